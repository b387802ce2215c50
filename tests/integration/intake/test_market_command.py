"""``crank-node market create`` and ``market list`` straight on the node database
(SQLite and PostgreSQL), in this process (tests/e2e/test_market_command.py runs the
launcher)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import market as domain
import storage
from localnet import LocalnetConfig, LocalnetServer
from tests.integration.intake.conftest import CliResult, run_cli

BASE_KEY, QUOTE_KEY = Keypair(), Keypair()
BASE_MINT, QUOTE_MINT = str(BASE_KEY.pubkey()), str(QUOTE_KEY.pubkey())
_RPC_URL: list[str] = []  # the module's localnet, where the two mints exist


@pytest.fixture(scope="module", autouse=True)
def _mints_on_chain() -> Iterator[None]:
    """market create checks the mints on chain: a localnet holding both."""
    with LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=0)) as server:
        server.fixtures.create_mint(9, mint=BASE_KEY)
        server.fixtures.create_mint(6, mint=QUOTE_KEY)
        server.advance_slots(server.config.confirmation_depth_slots + 1)
        _RPC_URL[:] = [server.url]
        yield


AUTHORITY_KEY = Keypair()
AUTHORITY, FEE_PAYER = str(AUTHORITY_KEY.pubkey()), str(Keypair().pubkey())


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CRANK_* setting of the caller's leaks in; the working directory is the test's."""
    for name in list(os.environ):
        if name.startswith("CRANK_") and not name.startswith("CRANK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def authority_file(keypair: Keypair = AUTHORITY_KEY) -> str:
    """``keypair`` as a Solana CLI keypair file (0600) in the working directory."""
    path = Path(f"authority-{keypair.pubkey()}.json").resolve()
    path.write_text(json.dumps(list(bytes(keypair))))
    path.chmod(0o600)
    return str(path)


def create_argv(database_url: str, **changes: str) -> list[str]:
    """``market create`` of SOL-USDC, signed with the settlement authority's keypair file
    (written in the working directory)."""
    flags = {
        "base-mint": BASE_MINT,
        "quote-mint": QUOTE_MINT,
        "base-decimals": "9",
        "quote-decimals": "6",
        "lot-size-atoms": "100000000",
        "tick-size-atoms": "1000",
        "settlement-authority": AUTHORITY,
        "fee-payer": FEE_PAYER,
        "authority-keypair": authority_file(),
        "id": "SOL-USDC",
    }
    flags.update({key.replace("_", "-"): value for key, value in changes.items()})
    argv = ["market", "create", "--db-url", database_url]
    for key, value in flags.items():
        argv += [f"--{key}", value]
    return [*argv, "--rpc-url", _RPC_URL[0]]


def market(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    return run_cli(capsys, *argv)


def test_create_stores_the_market_and_list_shows_it(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """market create stores exactly the market given; market list prints it in a table,
    and --json as the market's JSON form."""
    created = market(capsys, *create_argv(database_url))
    listed = market(capsys, "market", "list", "--db-url", database_url)
    as_json = market(capsys, "market", "list", "--db-url", database_url, "--json")

    assert created.code == 0, created.err
    assert "market SOL-USDC created" in created.out
    stored = storage.get_market(engine, "SOL-USDC")
    assert stored is not None
    assert (str(stored.base_mint), stored.lot_size_atoms, stored.tick_size_atoms) == (
        BASE_MINT,
        10**8,
        1_000,
    )
    assert listed.code == 0 and listed.out.splitlines()[0].startswith("MARKET")
    assert "SOL-USDC" in listed.out and BASE_MINT in listed.out
    assert json.loads(as_json.out) == [stored.to_json()]


def test_create_without_an_id_names_the_market_after_its_mints(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--id left out: the id is the first 8 characters of each mint."""
    argv = create_argv(database_url)
    argv = [*argv[: argv.index("--id")], "--rpc-url", _RPC_URL[0]]

    assert market(capsys, *argv).code == 0
    assert [m.market_id for m in storage.list_markets(engine)] == [
        f"{BASE_MINT[:8]}-{QUOTE_MINT[:8]}"
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lot_size_atoms": "0"}, "lot_size_atoms"),
        ({"tick_size_atoms": "-1"}, "tick_size_atoms"),
        ({"base_decimals": "20"}, "base_decimals"),
        ({"base_mint": "not-base58!"}, "base_mint"),
        ({"quote_mint": BASE_MINT}, "quote_mint"),
        ({"id": "no spaces"}, "market_id"),
    ],
)
def test_create_with_a_bad_value_exits_1_naming_the_field_and_stores_nothing(
    engine: Engine,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, str],
    field: str,
) -> None:
    """A value no market may have: exit 1, one error line naming the field, no market."""
    result = market(capsys, *create_argv(database_url, **changes))

    assert result.code == 1
    assert result.error_line().startswith(f"crank-node market create: error: {field} (--")
    assert storage.list_markets(engine) == []


def test_create_of_an_id_already_taken_exits_1_naming_market_id(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second market with the same id is refused naming market_id; the first stays."""
    assert market(capsys, *create_argv(database_url)).code == 0

    again = market(capsys, *create_argv(database_url, lot_size_atoms="1000"))

    assert again.code == 1
    assert again.error_line().startswith("crank-node market create: error: market_id (--id):")
    (stored,) = storage.list_markets(engine)
    assert stored.lot_size_atoms == 10**8


def test_a_database_without_the_schema_says_to_run_db_upgrade(
    empty_engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a database that was never migrated: exit 1 pointing at `crank-node db upgrade`."""
    result = market(capsys, "market", "list", "--db-url", database_url)

    assert result.code == 1
    assert "crank-node db upgrade" in result.error_line()


def test_create_signs_the_definition_with_the_authority_keypair(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stored market carries the settlement authority's signature of its definition,
    and it verifies (the node will match and settle it)."""
    assert market(capsys, *create_argv(database_url)).code == 0

    stored = storage.get_market(engine, "SOL-USDC")
    assert stored is not None and stored.definition_signature is not None
    assert domain.market_definition_refusal(stored, stored.definition_signature) is None
    assert storage.refused_markets(engine) == {}


def test_create_with_a_keypair_that_is_not_the_authority_exits_1_and_stores_nothing(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--authority-keypair of another key than --settlement-authority: exit 1 naming both
    keys, nothing stored (it could not sign the market)."""
    other = Keypair()
    result = market(capsys, *create_argv(database_url, authority_keypair=authority_file(other)))

    assert result.code == 1
    line = result.error_line()
    assert line.startswith("crank-node market create: error: --authority-keypair:")
    assert str(other.pubkey()) in line and AUTHORITY in line
    assert storage.list_markets(engine) == []


def test_sign_signs_a_market_stored_unsigned_and_refuses_another_key(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A market stored before revision 0010 (no signature) is refused by the node until
    `market sign` with its authority's keypair; another keypair is refused, nothing
    changes; an unknown id exits 1."""
    unsigned = domain.Market(
        market_id="OLD-1",
        base_mint=BASE_KEY.pubkey(),
        base_decimals=9,
        quote_mint=QUOTE_KEY.pubkey(),
        quote_decimals=6,
        lot_size_atoms=1_000,
        tick_size_atoms=10,
        settlement_authority=AUTHORITY_KEY.pubkey(),
        fee_payer=Keypair().pubkey(),
    )
    storage.insert_market(engine, unsigned)
    assert list(storage.refused_markets(engine)) == ["OLD-1"]
    sign = ["market", "sign", "--db-url", database_url, "--id", "OLD-1", "--authority-keypair"]

    wrong = market(capsys, *sign, authority_file(Keypair()))
    assert wrong.code == 1 and "--authority-keypair" in wrong.error_line()
    assert list(storage.refused_markets(engine)) == ["OLD-1"]

    signed = market(capsys, *sign, authority_file())
    assert signed.code == 0, signed.err
    assert f"market OLD-1 signed by {AUTHORITY}" in signed.out
    assert storage.refused_markets(engine) == {}

    unknown = market(capsys, *sign[:5], "NOPE", *sign[6:], authority_file())
    assert unknown.code == 1 and "NOPE" in unknown.error_line()
