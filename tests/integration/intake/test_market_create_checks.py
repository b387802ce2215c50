"""``crank-node market create`` against real mints on localnet: Token-2022 mints built
with each extension market/mint.py refuses (by the real Token-2022 program LiteSVM
runs) are refused naming the extension, a mint with allowed extensions is accepted,
and every other refusal of the command says why and stores nothing (issue 16)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction, VersionedTransaction
from spl.token.constants import MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from sqlalchemy.engine import Engine

import storage
from localnet import LocalnetConfig, LocalnetServer
from tests.integration.intake.conftest import CliResult, run_cli
from tests.integration.intake.test_market_command import _clean_environment, authority_file

pytestmark = pytest.mark.timeout(120)
__all__ = ["_clean_environment"]  # the autouse fixture: no CRANK_* setting leaks in

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qH3oxhUbCy4qk4BwCMyx8NhJs3")
AUTHORITY_KEY = Keypair()
AUTHORITY, FEE_PAYER = str(AUTHORITY_KEY.pubkey()), str(Keypair().pubkey())
ERROR = "crank-node market create: error: "


# -- Token-2022 mints with extensions, built by hand from the program's instruction layouts


@dataclass(frozen=True)
class Extension:
    """One mint extension: its TLV value size, and its initialize instruction's data
    (the Token-2022 instruction byte, then the extension's own)."""

    name: str
    value_len: int
    data: bytes


def _key(text: str = "") -> bytes:
    return bytes(Keypair().pubkey()) if not text else bytes(Pubkey.from_string(text))


def _some(key: bytes) -> bytes:  # COption<Pubkey> in an instruction: tag byte, then the key
    return b"\x01" + key


TRANSFER_FEE = Extension(  # TransferFeeExtension::InitializeTransferFeeConfig, 1% up to 10^6
    "TransferFeeConfig",
    108,
    bytes([26, 0]) + _some(_key()) + _some(_key()) + struct.pack("<HQ", 100, 1_000_000),
)
CONFIDENTIAL = Extension(  # ConfidentialTransferExtension::InitializeMint: authority,
    "ConfidentialTransferMint",
    65,
    bytes([27, 0]) + _key() + b"\x01" + bytes(32),
)  # auto-approve, no auditor
DEFAULT_FROZEN = Extension("DefaultAccountState", 1, bytes([28, 0, 2]))
DEFAULT_INITIALIZED = Extension("DefaultAccountState", 1, bytes([28, 0, 1]))
NON_TRANSFERABLE = Extension("NonTransferable", 0, bytes([32]))
PERMANENT_DELEGATE = Extension("PermanentDelegate", 32, bytes([35]) + _key())
TRANSFER_HOOK = Extension(  # authority, hook program
    "TransferHook", 64, bytes([36, 0]) + _key() + bytes(MEMO_PROGRAM)
)
PAUSABLE = Extension("Pausable", 33, bytes([44, 0]) + _key())  # authority; paused: false
CLOSE_AUTHORITY = Extension("MintCloseAuthority", 32, bytes([25]) + _some(_key()))
METADATA_POINTER = Extension("MetadataPointer", 64, bytes([39, 0]) + _key() + _key())

REFUSED = [
    TRANSFER_FEE,
    CONFIDENTIAL,
    DEFAULT_FROZEN,
    NON_TRANSFERABLE,
    PERMANENT_DELEGATE,
    TRANSFER_HOOK,
    PAUSABLE,
]


def _mint_with(server: LocalnetServer, extensions: list[Extension], decimals: int = 6) -> Pubkey:
    """A Token-2022 mint with ``extensions``, built as an issuer would: create the
    account at the exact size, initialize each extension, then InitializeMint2 (with a
    freeze authority, which a default-frozen mint needs). Raises if the program refuses."""
    mint, payer = Keypair(), server.fixtures.payer
    space = 165 + 1 + sum(4 + extension.value_len for extension in extensions)
    space = space if extensions else MINT_LEN  # no extension: the plain 82-byte mint
    meta = [AccountMeta(mint.pubkey(), is_signer=False, is_writable=True)]
    initialize = bytes([20, decimals]) + _key() + _some(_key())
    instructions = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                space=space,
                lamports=server.ledger.minimum_balance_for_rent_exemption(space),
                owner=TOKEN_2022_PROGRAM_ID,
            )
        ),
        *(Instruction(TOKEN_2022_PROGRAM_ID, e.data, meta) for e in extensions),
        Instruction(TOKEN_2022_PROGRAM_ID, initialize, meta),
    ]
    landed = _execute(server, instructions, [payer, mint])
    assert landed is None, f"Token-2022 refused {[e.name for e in extensions]}: {landed}"
    return mint.pubkey()


def _execute(
    server: LocalnetServer, instructions: list[Instruction], signers: list[Keypair]
) -> str | None:
    """Land ``instructions`` now (visible at confirmed after the slots advance); the
    error and logs if it failed, else None."""
    ledger = server.ledger
    blockhash = ledger.blockhash_at(ledger.slot).blockhash
    transaction = Transaction.new_signed_with_payer(
        instructions, signers[0].pubkey(), signers, blockhash
    )
    landed = ledger.execute_now(VersionedTransaction.from_legacy(transaction))
    server.advance_slots(server.config.confirmation_depth_slots + 1)
    return None if landed.err is None else f"{landed.err}; logs: {list(landed.logs)}"


@dataclass(frozen=True)
class Chain:
    server: LocalnetServer
    base: Pubkey  # a plain SPL Token mint, 9 decimals


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=0)) as server:
        base = server.fixtures.create_mint(9).address
        server.advance_slots(server.config.confirmation_depth_slots + 1)
        yield Chain(server, base)


def create(
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    chain: Chain,
    quote: Pubkey | str,
    **changes: str,
) -> CliResult:
    flags = {
        "base-mint": str(chain.base),
        "quote-mint": str(quote),
        "base-decimals": "9",
        "quote-decimals": "6",
        "lot-size-atoms": "1000",
        "tick-size-atoms": "10",
        "settlement-authority": AUTHORITY,
        "fee-payer": FEE_PAYER,
        "id": "BASE-QUOTE",
        "rpc-url": chain.server.url,
        "authority-keypair": authority_file(AUTHORITY_KEY),
    }
    flags.update({key.replace("_", "-"): value for key, value in changes.items()})
    argv = ["market", "create", "--db-url", database_url]
    for key, value in flags.items():
        argv += [f"--{key}", value]
    return run_cli(capsys, *argv)


def assert_refused(result: CliResult, engine: Engine, field: str, *parts: str) -> None:
    """Exit 1, one error line naming ``field`` and its flag and containing ``parts``,
    nothing on stdout and no market stored."""
    assert result.code == 1, result.out
    line = result.error_line()
    assert line.startswith(f"{ERROR}{field} (--{field.replace('_', '-')}): "), line
    for part in parts:
        assert part in line, line
    assert result.out == ""
    assert storage.list_markets(engine) == []


# -- Token-2022 extensions -------------------------------------------------------------------


@pytest.mark.parametrize("extension", REFUSED, ids=lambda e: e.name)
def test_a_token_2022_mint_with_a_refused_extension_is_refused_naming_it(
    chain: Chain,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    extension: Extension,
) -> None:
    """A real Token-2022 mint initialized with the extension (the program accepted it):
    market create exits 1 naming quote_mint, the mint, the extension and why; no market."""
    quote = _mint_with(chain.server, [extension])

    result = create(capsys, database_url, chain, quote)

    assert_refused(
        result, engine, "quote_mint", f"{quote} is refused: Token-2022 extension {extension.name}"
    )
    if extension is DEFAULT_FROZEN:
        assert "frozen" in result.error_line()


def test_a_refused_extension_among_allowed_ones_on_the_base_mint_is_refused(
    chain: Chain, engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The allowed close authority and metadata pointer do not hide a transfer hook."""
    base = _mint_with(chain.server, [CLOSE_AUTHORITY, METADATA_POINTER, TRANSFER_HOOK], 9)
    quote = _mint_with(chain.server, [])

    result = create(capsys, database_url, chain, quote, base_mint=str(base))

    assert_refused(result, engine, "base_mint", "TransferHook", "needing accounts we do not pass")


def test_a_token_2022_mint_with_allowed_extensions_is_accepted_under_token_2022(
    chain: Chain, engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Close authority, metadata pointer and DefaultAccountState initialized change
    nothing a transfer moves: the market is stored with the quote leg under Token-2022."""
    quote = _mint_with(chain.server, [CLOSE_AUTHORITY, METADATA_POINTER, DEFAULT_INITIALIZED])

    result = create(capsys, database_url, chain, quote, quote_token_program="token-2022")

    assert result.code == 0, result.err
    (stored,) = storage.list_markets(engine)
    assert (stored.quote_mint, stored.quote_token_program) == (quote, TOKEN_2022_PROGRAM_ID)
    assert stored.base_token_program == TOKEN_PROGRAM_ID


# -- the other refusals ------------------------------------------------------------------


def test_a_mint_that_does_not_exist_is_refused(
    chain: Chain, engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = Keypair().pubkey()
    result = create(capsys, database_url, chain, missing)
    assert_refused(
        result, engine, "quote_mint", f"{missing} does not exist on chain", chain.server.url
    )


def test_a_wallet_is_not_a_mint(
    chain: Chain, engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An account of the system program (a funded wallet): not a token program's."""
    wallet = chain.server.fixtures.fund_wallet().pubkey()
    chain.server.advance_slots(chain.server.config.confirmation_depth_slots + 1)
    result = create(capsys, database_url, chain, wallet)
    assert_refused(
        result,
        engine,
        "quote_mint",
        f"{wallet} is owned by 11111111111111111111111111111111, not a token program",
    )


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
def test_a_token_account_is_not_a_mint(
    chain: Chain,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    program: Pubkey,
) -> None:
    """A token account of either program (Token-2022's associated accounts carry the
    ImmutableOwner extension and AccountType 2) given as the quote mint."""
    fixtures = chain.server.fixtures
    mint = fixtures.create_mint(6, token_program=program)
    account = fixtures.create_token_account(Keypair().pubkey(), mint)
    chain.server.advance_slots(chain.server.config.confirmation_depth_slots + 1)

    result = create(capsys, database_url, chain, account)

    reason = "has 165 bytes:" if program == TOKEN_PROGRAM_ID else "is a token account,"
    assert_refused(result, engine, "quote_mint", f"{account} {reason} not a mint")


def test_an_uninitialized_mint_is_refused(
    chain: Chain, engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """82 bytes owned by SPL Token that InitializeMint never ran on."""
    mint, payer = Keypair(), chain.server.fixtures.payer
    rent = chain.server.ledger.minimum_balance_for_rent_exemption(MINT_LEN)
    allocate = create_account(
        CreateAccountParams(
            from_pubkey=payer.pubkey(),
            to_pubkey=mint.pubkey(),
            lamports=rent,
            space=MINT_LEN,
            owner=TOKEN_PROGRAM_ID,
        )
    )
    assert _execute(chain.server, [allocate], [payer, mint]) is None

    result = create(capsys, database_url, chain, mint.pubkey())

    assert_refused(result, engine, "quote_mint", f"{mint.pubkey()} is not an initialized mint")


@pytest.mark.parametrize(
    ("given", "actual"), [("spl-token", "token-2022"), (str(TOKEN_PROGRAM_ID), "token-2022")]
)
def test_a_mint_of_another_program_than_named_is_refused(
    chain: Chain,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    given: str,
    actual: str,
) -> None:
    quote = _mint_with(chain.server, [])
    result = create(capsys, database_url, chain, quote, quote_token_program=given)
    assert_refused(result, engine, "quote_mint", f"is a mint of {actual}, not of spl-token")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("token-2023", "must be spl-token, token-2022 or a program id"),
        (str(MEMO_PROGRAM), f"{MEMO_PROGRAM} is not the SPL Token or the Token-2022 program"),
        ("", "must be spl-token, token-2022 or a program id"),
    ],
)
def test_a_token_program_that_is_no_token_program_is_refused_before_the_chain_is_asked(
    chain: Chain,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    text: str,
    reason: str,
) -> None:
    """Refused from the flag alone: the quote mint need not even exist."""
    result = create(capsys, database_url, chain, Keypair().pubkey(), base_token_program=text)
    assert_refused(result, engine, "base_token_program", reason)


@pytest.mark.parametrize("side", ["base", "quote"])
def test_decimals_other_than_the_mints_are_refused_naming_the_decimals_flag(
    chain: Chain,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    side: str,
) -> None:
    quote = chain.server.fixtures.create_mint(6).address
    chain.server.advance_slots(chain.server.config.confirmation_depth_slots + 1)
    on_chain = {"base": 9, "quote": 6}[side]
    result = create(capsys, database_url, chain, quote, **{f"{side}_decimals": "0"})
    assert_refused(result, engine, f"{side}_decimals", f"has {on_chain} decimals on chain, not 0")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lot_size_atoms": str(2**64)}, "lot_size_atoms"),
        ({"tick_size_atoms": str(2**64)}, "tick_size_atoms"),
        ({"tick_size_atoms": "0"}, "tick_size_atoms"),
        ({"quote_decimals": "-1"}, "quote_decimals"),
        ({"quote_decimals": "256"}, "quote_decimals"),
        ({"settlement_authority": "0OIl"}, "settlement_authority"),
        ({"fee_payer": "x" * 60}, "fee_payer"),
        ({"id": "a" * 200}, "market_id"),
    ],
)
def test_values_no_market_may_have_are_refused_before_the_chain_is_asked(
    chain: Chain,
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str],
    field: str,
) -> None:
    """Out-of-range sizes and decimals, keys that are not base58, an over-long id."""
    result = create(capsys, database_url, chain, Keypair().pubkey(), **changes)
    flag = "--id" if field == "market_id" else "--" + field.replace("_", "-")
    assert result.code == 1
    assert result.error_line().startswith(f"{ERROR}{field} ({flag}): "), result.error_line()
    assert storage.list_markets(engine) == []


def test_a_chain_that_cannot_be_asked_is_refused_saying_so(
    chain: Chain, engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rpc-url where nothing listens: exit 1, "cannot check the mints on chain"."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    result = create(capsys, database_url, chain, Keypair().pubkey(), rpc_url=url)
    assert result.code == 1
    assert result.error_line().startswith(f"{ERROR}cannot check the mints on chain: ")
    assert url in result.error_line()
    assert storage.list_markets(engine) == []
