"""The settlement transaction of one fill, built and signed without any I/O.

Instructions, in order:

1. ComputeBudget ``SetComputeUnitLimit``;
2. ComputeBudget ``SetComputeUnitPrice`` (micro-lamports per compute unit);
3. System ``CreateAccountWithSeed``: the fill's settlement marker
   (``market.marker``): base = the settlement authority, a seed only the
   authority can compute, 0 bytes, owner System, rent paid by the fee payer.
   It can be created once, so a second attempt that lands fails here
   (``AccountAlreadyInUse``) and moves nothing: the chain itself refuses a
   second settlement of the fill;
4. SPL Token (or Token-2022, the mint's program) ``TransferChecked``: base, seller's
   pay account -> buyer's receive account, signed by the market's settlement
   authority (the seller's delegate);
5. SPL Token ``TransferChecked``: quote, buyer's pay account -> seller's
   receive account, signed by the settlement authority (the buyer's delegate);
6. Memo ``crank-node:fill:<fill id>``, signed by the settlement authority, so
   anyone can find a fill's settlement on chain without our database.

One transaction, so the marker and both legs land or none does (the marker
exists if and only if the fill settled). Attempts written before schema 0005
have no marker (instruction 3 absent); ``settlement_instructions`` still builds
that legacy form with ``marker=None``, for measurements and old rows. The fee payer signs first
(its signature is the transaction's id); the settlement authority signs too
(once, if it is the same key). The same inputs give byte-identical
transactions (ed25519 is deterministic), which is what lets a resend be
deduplicated by the cluster.

It runs once per attempt on SettlementActor's thread, so it avoids two costs that
showed in a profile of the node under load (the bytes it makes are the same):
solders derives a keypair's public key from its secret on every ``pubkey()``
(about 16 us, an elliptic-curve multiplication), so public keys are derived once
per keypair (:func:`_public_key`); and the transaction is put together from its
message and one ``sign_message`` per signer, which is what
``Transaction.new_signed_with_payer`` does after deriving every signer's public
key again. The TransferChecked data is packed here rather than by spl-token's
``construct`` layouts (15 us per leg).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from market.errors import NumberOutOfRange, WrongMarket, WrongSigner
from market.fields import check_u64
from market.fill import Fill
from market.marker import Marker, marker_address, marker_create_instruction, marker_seed
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
# SPL Token's TransferChecked: tag 12, amount (u64), decimals (u8), little-endian.
_TRANSFER_CHECKED = struct.Struct("<BQB")
_TRANSFER_CHECKED_TAG = 12
# Public keys of the keypairs seen, by a digest of the keypair's bytes (so no secret
# is kept here); a node signs with a handful of keypairs, the bound is for tests.
_PUBLIC_KEYS: dict[bytes, Pubkey] = {}
_MAX_PUBLIC_KEYS = 256


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
    marker_address: Pubkey | None = None  # the marker this attempt creates

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
    marker: Marker | None = None,
) -> list[Instruction]:
    """The six instructions of the module docstring, for ``fill`` on ``market``
    (five, the legacy form without the marker create, when ``marker`` is None)."""
    _check_inputs(market, fill, compute_unit_price_micro_lamports, compute_unit_limit)
    authority = market.settlement_authority
    create = (
        []
        if marker is None
        else [
            marker_create_instruction(
                fee_payer=market.fee_payer, settlement_authority=authority, marker=marker
            )
        ]
    )
    return [
        set_compute_unit_limit(compute_unit_limit),
        set_compute_unit_price(compute_unit_price_micro_lamports),
        *create,
        _leg(
            program=market.base_token_program,
            source=fill.seller_pay_account,
            mint=market.base_mint,
            dest=fill.buyer_receive_account,
            delegate=authority,
            amount=fill.base_atoms,
            decimals=market.base_decimals,
        ),
        _leg(
            program=market.quote_token_program,
            source=fill.buyer_pay_account,
            mint=market.quote_mint,
            dest=fill.seller_receive_account,
            delegate=authority,
            amount=fill.quote_atoms,
            decimals=market.quote_decimals,
        ),
        Instruction(
            MEMO_PROGRAM_ID,
            settlement_memo(fill.fill_id),
            [AccountMeta(authority, is_signer=True, is_writable=False)],
        ),
    ]


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
    """Build and sign the settlement of ``fill``, marker create included;
    ``recent_blockhash`` comes from the caller (BlockhashActor), which also
    records its last valid block height.

    Raises :class:`~market.errors.WrongSigner` if a keypair is not the market's
    fee payer or settlement authority, and :class:`~market.errors.WrongMarket`
    if the fill is another market's.
    """
    fee_payer_key = _public_key(fee_payer)
    authority_key = _public_key(settlement_authority)
    _check_signer("fee_payer", fee_payer_key, market.fee_payer)
    _check_signer("settlement_authority", authority_key, market.settlement_authority)
    seed = marker_seed(settlement_authority, fill.fill_id)
    marker = Marker(seed, marker_address(authority_key, seed))
    instructions = settlement_instructions(
        market, fill, compute_unit_price_micro_lamports, compute_unit_limit, marker
    )
    message = Message.new_with_blockhash(instructions, fee_payer_key, recent_blockhash)
    signed = bytes(message)
    by_key = {fee_payer_key: fee_payer, authority_key: settlement_authority}
    # Every required signer is one of the two (the instructions' only signer is the
    # authority), in the message's order: the fee payer first.
    required = message.account_keys[: message.header.num_required_signatures]
    signatures = [by_key[key].sign_message(signed) for key in required]
    return SettlementTransaction(
        fill.fill_id, VersionedTransaction.populate(message, signatures), marker.address
    )


def _public_key(keypair: Keypair) -> Pubkey:
    """``keypair.pubkey()``, derived once per keypair (module docstring)."""
    digest = hashlib.blake2b(bytes(keypair), digest_size=32).digest()
    public_key = _PUBLIC_KEYS.get(digest)
    if public_key is None:
        public_key = keypair.pubkey()
        if len(_PUBLIC_KEYS) >= _MAX_PUBLIC_KEYS:
            _PUBLIC_KEYS.clear()
        _PUBLIC_KEYS[digest] = public_key
    return public_key


def _leg(
    *,
    program: Pubkey,
    source: Pubkey,
    mint: Pubkey,
    dest: Pubkey,
    delegate: Pubkey,
    amount: int,
    decimals: int,
) -> Instruction:
    """SPL Token ``TransferChecked`` by the delegate, as spl-token's ``transfer_checked``
    builds it (tests/unit/market checks the two give the same instruction), under the
    mint's ``program`` (SPL Token or Token-2022: same instruction, same layout)."""
    data = _TRANSFER_CHECKED.pack(_TRANSFER_CHECKED_TAG, amount, decimals)
    accounts = [
        AccountMeta(source, is_signer=False, is_writable=True),
        AccountMeta(mint, is_signer=False, is_writable=False),
        AccountMeta(dest, is_signer=False, is_writable=True),
        AccountMeta(delegate, is_signer=True, is_writable=False),
    ]
    return Instruction(program, data, accounts)


def _check_signer(field: str, public_key: Pubkey, expected: Pubkey) -> None:
    if public_key != expected:
        raise WrongSigner(field, f"the keypair is {public_key}, the market's is {expected}")


def _check_inputs(market: Market, fill: Fill, price: int, limit: int) -> None:
    if fill.market_id != market.market_id:
        raise WrongMarket("market_id", f"the fill is for {fill.market_id!r}")
    # The legs' amounts are packed as u64: out of range is a clear error, not struct's.
    check_u64("base_atoms", fill.base_atoms)
    check_u64("quote_atoms", fill.quote_atoms)
    check_u64("compute_unit_price_micro_lamports", price)
    if not 0 < check_u64("compute_unit_limit", limit) <= _MAX_UNITS:
        raise NumberOutOfRange("compute_unit_limit", f"must be in 1..{_MAX_UNITS}, got {limit}")
