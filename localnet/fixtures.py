"""Set up wallets, SPL mints, token accounts, balances and delegates in a few lines.

Every fixture is a real, signed transaction that lands at once in the current
slot (visible at ``processed``; ``confirmed`` and ``finalized`` follow as slots
advance). Keypairs are returned to the caller and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loguru import logger
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction, VersionedTransaction
from spl.token.constants import MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    approve_checked,
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
)
from spl.token.models import ApproveCheckedParams, InitializeMint2Params, MintToCheckedParams

from localnet.errors import FixtureFailed
from localnet.ledger import Ledger
from localnet.tokens import parse_token_account
from localnet.transaction_log import LandedTransaction
from localnet.tx_errors import describe_transaction_error

__all__ = ["LAMPORTS_PER_SOL", "Fixtures", "MintFixture"]

LAMPORTS_PER_SOL = 1_000_000_000
# What the fixtures' own fee payer starts with; it pays rent and fees for every fixture.
PAYER_LAMPORTS = 1_000_000 * LAMPORTS_PER_SOL


@dataclass(frozen=True)
class MintFixture:
    """An SPL mint created by the fixtures; ``authority`` may mint more."""

    address: Pubkey
    decimals: int
    authority: Keypair = field(repr=False)
    token_program: Pubkey = TOKEN_PROGRAM_ID


class Fixtures:
    """Fixture transactions on one ledger, paid for by a payer funded from the faucet."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.payer = Keypair()
        funding = ledger.faucet_transfer(self.payer.pubkey(), PAYER_LAMPORTS)
        self._execute(funding, "fund_payer", payer=str(self.payer.pubkey()))

    def fund_wallet(
        self, lamports: int = 10 * LAMPORTS_PER_SOL, wallet: Keypair | None = None
    ) -> Keypair:
        """A wallet (new unless given) holding ``lamports`` more than before."""
        wallet = wallet or Keypair()
        instruction = transfer(
            TransferParams(
                from_pubkey=self.payer.pubkey(), to_pubkey=wallet.pubkey(), lamports=lamports
            )
        )
        self._run([instruction], [], "fund_wallet", wallet=str(wallet.pubkey()), lamports=lamports)
        return wallet

    def create_mint(
        self,
        decimals: int = 6,
        authority: Keypair | None = None,
        mint: Keypair | None = None,
        token_program: Pubkey = TOKEN_PROGRAM_ID,
    ) -> MintFixture:
        """A new initialized mint; ``authority`` (new unless given) is its mint authority."""
        authority = authority or Keypair()
        mint = mint or Keypair()
        rent = self._ledger.minimum_balance_for_rent_exemption(MINT_LEN)
        instructions = [
            create_account(
                CreateAccountParams(
                    from_pubkey=self.payer.pubkey(),
                    to_pubkey=mint.pubkey(),
                    lamports=rent,
                    space=MINT_LEN,
                    owner=token_program,
                )
            ),
            initialize_mint2(
                InitializeMint2Params(
                    decimals=decimals,
                    program_id=token_program,
                    mint=mint.pubkey(),
                    mint_authority=authority.pubkey(),
                    freeze_authority=None,
                )
            ),
        ]
        self._run(instructions, [mint], "create_mint", mint=str(mint.pubkey()), decimals=decimals)
        return MintFixture(mint.pubkey(), decimals, authority, token_program)

    def create_token_account(self, owner: Pubkey, mint: MintFixture) -> Pubkey:
        """``owner``'s associated token account for ``mint`` (created if missing)."""
        instruction = create_idempotent_associated_token_account(
            self.payer.pubkey(), owner, mint.address, mint.token_program
        )
        self._run(
            [instruction], [], "create_token_account", owner=str(owner), mint=str(mint.address)
        )
        return get_associated_token_address(owner, mint.address, mint.token_program)

    def mint_to(self, mint: MintFixture, destination: Pubkey, amount: int) -> Signature:
        """Mint ``amount`` base units of ``mint`` into the token account ``destination``."""
        instruction = mint_to_checked(
            MintToCheckedParams(
                program_id=mint.token_program,
                mint=mint.address,
                dest=destination,
                mint_authority=mint.authority.pubkey(),
                amount=amount,
                decimals=mint.decimals,
            )
        )
        landed = self._run(
            [instruction], [mint.authority], "mint_to", destination=str(destination), amount=amount
        )
        return landed.signature

    def approve_delegate(
        self,
        token_account: Pubkey,
        owner: Keypair,
        delegate: Pubkey,
        amount: int,
        mint: MintFixture,
    ) -> Signature:
        """Let ``delegate`` move up to ``amount`` out of ``owner``'s ``token_account`` (Approve)."""
        instruction = approve_checked(
            ApproveCheckedParams(
                program_id=mint.token_program,
                source=token_account,
                mint=mint.address,
                delegate=delegate,
                owner=owner.pubkey(),
                amount=amount,
                decimals=mint.decimals,
            )
        )
        landed = self._run(
            [instruction],
            [owner],
            "approve_delegate",
            token_account=str(token_account),
            delegate=str(delegate),
            amount=amount,
        )
        return landed.signature

    def fund_token_account(self, owner: Pubkey, mint: MintFixture, amount: int) -> Pubkey:
        """``owner``'s associated token account for ``mint``, holding ``amount`` more."""
        account = self.create_token_account(owner, mint)
        if amount:
            self.mint_to(mint, account, amount)
        return account

    def token_balance(self, token_account: Pubkey) -> int:
        """Base units held now (processed state); raises if it is not a token account."""
        token = parse_token_account(self._ledger.account(token_account, self._ledger.slot))
        if token is None:
            raise FixtureFailed(f"{token_account} is not a token account")
        return int(token.amount)

    def lamports(self, address: Pubkey) -> int:
        account = self._ledger.account(address, self._ledger.slot)
        return 0 if account is None else int(account.lamports)

    def _run(
        self, instructions: list[Instruction], signers: list[Keypair], name: str, **details: object
    ) -> LandedTransaction:
        blockhash = self._ledger.blockhash_at(self._ledger.slot).blockhash
        legacy = Transaction.new_signed_with_payer(
            instructions, self.payer.pubkey(), [self.payer, *signers], blockhash
        )
        return self._execute(VersionedTransaction.from_legacy(legacy), name, **details)

    def _execute(
        self, transaction: VersionedTransaction, name: str, **details: object
    ) -> LandedTransaction:
        landed = self._ledger.execute_now(transaction)
        if landed.err is not None:
            raise FixtureFailed(
                f"{name} failed: {describe_transaction_error(landed.err)}; "
                f"logs: {list(landed.logs)}"
            )
        logger.bind(
            action=f"localnet.fixture.{name}", signature=str(landed.signature), **details
        ).info("fixture applied")
        return landed
