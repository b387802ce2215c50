"""The settlement transaction of one fill, built and signed without any I/O.

Instructions, in order:

1. ComputeBudget ``SetComputeUnitLimit``;
2. ComputeBudget ``SetComputeUnitPrice`` (micro-lamports per compute unit);
3. SPL Token ``TransferChecked``: base, seller's pay account -> buyer's receive
   account, signed by the market's settlement authority (the seller's delegate);
4. SPL Token ``TransferChecked``: quote, buyer's pay account -> seller's
   receive account, signed by the settlement authority (the buyer's delegate);
5. Memo ``crank-node:fill:<fill id>``, signed by the settlement authority, so
   anyone can find a fill's settlement on chain without our database.

One transaction, so both legs land or neither does. The fee payer signs first
(its signature is the transaction's id); the settlement authority signs too
(once, if it is the same key). The same inputs give byte-identical
transactions (ed25519 is deterministic), which is what lets a resend be
deduplicated by the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from market.errors import NumberOutOfRange, WrongMarket, WrongSigner
from market.fields import check_u64
from market.fill import Fill
from market.market import Market

__all__ = [
    "DEFAULT_COMPUTE_UNIT_LIMIT",
    "MEMO_PREFIX",
    "SettlementTransaction",
    "build_settlement_transaction",
    "fill_id_from_memo",
    "settlement_instructions",
    "settlement_memo",
]

# Two TransferChecked cost about 6.2k compute units each on the classic SPL Token
# program (far less on localnet's, ~1k for the whole transaction), the memo a few
# thousand: 40k leaves margin without bidding priority fees on units never used.
# tests/integration/market checks a real settlement fits.
DEFAULT_COMPUTE_UNIT_LIMIT = 40_000
MEMO_PREFIX = "crank-node:fill:"
# The most compute units one transaction may ask for.
_MAX_UNITS = 1_400_000


def settlement_memo(fill_id: str) -> bytes:
    """The memo's bytes for ``fill_id``."""
    return f"{MEMO_PREFIX}{fill_id}".encode("ascii")


def fill_id_from_memo(memo: str) -> str | None:
    """The fill id in a memo as RPC shows it (``getSignaturesForAddress`` prefixes
    its length, ``"[60] crank-node:fill:..."``), or ``None`` if it is not ours."""
    text = memo.split("] ", 1)[1] if memo.startswith("[") and "] " in memo else memo
    return text[len(MEMO_PREFIX) :] if text.startswith(MEMO_PREFIX) else None


@dataclass(frozen=True)
class SettlementTransaction:
    """A signed settlement: what SettlementActor records before sending, then sends."""

    fill_id: str
    transaction: VersionedTransaction

    @property
    def signature(self) -> Signature:
        """The fee payer's signature: the transaction's id on chain."""
        signature: Signature = self.transaction.signatures[0]
        return signature

    @property
    def raw_bytes(self) -> bytes:
        """The wire form, as ``sendTransaction`` takes it (resends reuse these bytes)."""
        return bytes(self.transaction)


def settlement_instructions(
    market: Market,
    fill: Fill,
    compute_unit_price_micro_lamports: int,
    compute_unit_limit: int = DEFAULT_COMPUTE_UNIT_LIMIT,
) -> list[Instruction]:
    """The five instructions of the module docstring, for ``fill`` on ``market``."""
    _check_inputs(market, fill, compute_unit_price_micro_lamports, compute_unit_limit)
    authority = market.settlement_authority
    return [
        set_compute_unit_limit(compute_unit_limit),
        set_compute_unit_price(compute_unit_price_micro_lamports),
        _leg(source=fill.seller_pay_account, mint=market.base_mint,
             dest=fill.buyer_receive_account, delegate=authority,
             amount=fill.base_atoms, decimals=market.base_decimals),
        _leg(source=fill.buyer_pay_account, mint=market.quote_mint,
             dest=fill.seller_receive_account, delegate=authority,
             amount=fill.quote_atoms, decimals=market.quote_decimals),
        Instruction(
            MEMO_PROGRAM_ID,
            settlement_memo(fill.fill_id),
            [AccountMeta(authority, is_signer=True, is_writable=False)],
        ),
    ]  # fmt: skip


def build_settlement_transaction(
    market: Market,
    fill: Fill,
    *,
    fee_payer: Keypair,
    settlement_authority: Keypair,
    recent_blockhash: Hash,
    compute_unit_price_micro_lamports: int,
    compute_unit_limit: int = DEFAULT_COMPUTE_UNIT_LIMIT,
) -> SettlementTransaction:
    """Build and sign the settlement of ``fill``; ``recent_blockhash`` comes from
    the caller (BlockhashActor), which also records its last valid block height.

    Raises :class:`~market.errors.WrongSigner` if a keypair is not the market's
    fee payer or settlement authority, and :class:`~market.errors.WrongMarket`
    if the fill is another market's.
    """
    _check_signer("fee_payer", fee_payer, market.fee_payer)
    _check_signer("settlement_authority", settlement_authority, market.settlement_authority)
    instructions = settlement_instructions(
        market, fill, compute_unit_price_micro_lamports, compute_unit_limit
    )
    signers = [fee_payer]
    if settlement_authority.pubkey() != fee_payer.pubkey():
        signers.append(settlement_authority)
    legacy = Transaction.new_signed_with_payer(
        instructions, fee_payer.pubkey(), signers, recent_blockhash
    )
    return SettlementTransaction(fill.fill_id, VersionedTransaction.from_legacy(legacy))


def _leg(
    *, source: Pubkey, mint: Pubkey, dest: Pubkey, delegate: Pubkey, amount: int, decimals: int
) -> Instruction:
    return transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID, source=source, mint=mint, dest=dest,
            owner=delegate, amount=amount, decimals=decimals,
        )
    )  # fmt: skip


def _check_signer(field: str, keypair: Keypair, expected: Pubkey) -> None:
    if keypair.pubkey() != expected:
        raise WrongSigner(field, f"the keypair is {keypair.pubkey()}, the market's is {expected}")


def _check_inputs(market: Market, fill: Fill, price: int, limit: int) -> None:
    if fill.market_id != market.market_id:
        raise WrongMarket("market_id", f"the fill is for {fill.market_id!r}")
    check_u64("compute_unit_price_micro_lamports", price)
    if not 0 < check_u64("compute_unit_limit", limit) <= _MAX_UNITS:
        raise NumberOutOfRange("compute_unit_limit", f"must be in 1..{_MAX_UNITS}, got {limit}")
