"""crank-node market: create, sign and list markets, straight in the node database.

    crank-node market create --base-mint KEY --quote-mint KEY --base-decimals N
                             --quote-decimals N --lot-size-atoms N --tick-size-atoms N
                             --settlement-authority KEY --fee-payer KEY
                             --authority-keypair PATH [--id MARKET_ID]
                             [--base-token-program P] [--quote-token-program P] [--rpc-url URL]
    crank-node market sign --id MARKET_ID --authority-keypair PATH
    crank-node market list [--json]

The market's definition (mints, decimals, lot and tick sizes, settlement
authority, token programs: ``market/definition.py``) is signed by its settlement
authority, whose keypair file --authority-keypair is (the node's wallet: the key
makers delegate to). The node never matches or settles a market whose stored
definition does not verify against that signature: an order's price is per lot,
so a lot size edited in the database would make buyers pay many times what they
signed. ``sign`` signs a market stored without a signature (before revision
0010) as the row says it now: check it with ``list`` first.

Before anything is stored, create reads each mint on chain (``getAccountInfo`` at
``confirmed`` on --rpc-url, else the first configured RPC URL) and refuses, with
the reason, a mint that does not exist, is not a mint of the token program named
(``spl-token``, ``token-2022`` or the program id; left out: whichever keeps it),
has other decimals than given, or is a Token-2022 mint with an extension that
changes what a transfer moves (transfer fee, transfer hook, non-transferable,
confidential transfers, default-frozen accounts, permanent delegate, pausable:
``market/mint.py`` says why each). The market stores each mint's program;
settlement legs are TransferChecked of that program.

Prices are quote atoms per lot and must be multiples of the tick size; sizes
are base atoms and must be multiples of the lot size. --id defaults to the
first 8 characters of each mint (``BASEMINT-QUOTEMIN``).

The database is the node's: --db-url or --db-path, else the --config file,
else CRANK_DB_URL or CRANK_DB_PATH, else var/crank.db under the working
directory. Its schema must be current (``crank-node db upgrade``).

Exit codes: 0 done; 1 refused (the error names the field) or the database
failed; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from sqlalchemy.engine import Engine

from crank_node.cli.status import format_table
from crank_node.node.keypairs import KeypairError, load_keypair
from crank_node.node.settings import DB_PATH
from market import InvalidMarket, Market, MarketError
from market.mint import decode_mint, mint_refusal
from storage import (
    DuplicateEntry,
    check_schema,
    insert_market,
    list_markets,
    open_engine,
    sign_stored_market,
)
from supervision.errors import CrankError

__all__ = ["register"]

EXIT_OK = 0
EXIT_FAILED = 1
_MARKET_FLAGS = (
    ("base_mint", str),
    ("quote_mint", str),
    ("base_decimals", int),
    ("quote_decimals", int),
    ("lot_size_atoms", int),
    ("tick_size_atoms", int),
    ("settlement_authority", str),
    ("fee_payer", str),
)


def register(subparsers: Any) -> None:
    """Add the ``market`` command group to ``crank-node``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("database")
    group.add_argument("--config", type=Path, metavar="PATH", help="TOML settings file")
    # Both --db-url and --db-path given is refused by the settings, naming both.
    group.add_argument("--db-url", metavar="URL", help="sqlite:///PATH or postgresql+psycopg://")
    group.add_argument("--db-path", dest=DB_PATH, metavar="PATH", help="SQLite database file")
    parser = subparsers.add_parser(
        "market",
        help="create and list markets in the node database",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="market_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="create a market")
    for name, kind in _MARKET_FLAGS:
        metavar = "N" if kind is int else "PUBKEY"
        create.add_argument(
            "--" + name.replace("_", "-"), required=True, type=kind, metavar=metavar
        )
    create.add_argument("--id", dest="market_id", help="the market id (default: from the mints)")
    for side in ("base", "quote"):
        create.add_argument(
            f"--{side}-token-program",
            metavar="PROGRAM",
            help="spl-token, token-2022 or a program id (default: the mint's owner on chain)",
        )
    create.add_argument(
        "--rpc-url",
        dest="rpc_urls",
        action="append",
        metavar="URL",
        help="where to check the mints (default: the configured RPC URLs' first)",
    )
    create.add_argument(
        "--authority-keypair",
        required=True,
        type=Path,
        metavar="PATH",
        help="the settlement authority's keypair file: it signs the market's definition",
    )
    create.add_argument("--json", action="store_true", help="print the market as JSON")
    create.set_defaults(handler=handle_create)
    sign = actions.add_parser(
        "sign", parents=[common], help="sign a stored market's definition (after upgrading)"
    )
    sign.add_argument("--id", dest="market_id", required=True, help="the market id")
    sign.add_argument(
        "--authority-keypair",
        required=True,
        type=Path,
        metavar="PATH",
        help="the market's settlement authority's keypair file",
    )
    sign.set_defaults(handler=handle_sign)
    listing = actions.add_parser("list", parents=[common], help="list every market")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=handle_list)


def handle_create(args: argparse.Namespace) -> int:
    document: dict[str, Any] = {name: getattr(args, name) for name, _ in _MARKET_FLAGS}
    document["market_id"] = args.market_id or f"{args.base_mint[:8]}-{args.quote_mint[:8]}"
    try:
        market = Market.from_json(document)
        programs = {
            side: _program(f"{side}_token_program", getattr(args, f"{side}_token_program"))
            for side in ("base", "quote")
        }
    except MarketError as error:
        return _fail(args, _with_flag(error.field, error.reason))
    authority = _authority(args, market.settlement_authority)
    if authority is None:
        return EXIT_FAILED

    def create(engine: Engine) -> int:
        try:
            checked = _checked_on_chain(_rpc_url(args), market, programs)
        except MarketError as error:
            return _fail(args, _with_flag(error.field, error.reason))
        except CrankError as error:
            return _fail(args, f"cannot check the mints on chain: {error}")
        insert_market(engine, checked, authority=authority)
        print(json.dumps(checked.to_json(), indent=2) if args.json else _created(checked))
        return EXIT_OK

    return _with_engine(args, create)


def handle_sign(args: argparse.Namespace) -> int:
    try:
        authority = load_keypair(args.authority_keypair)
    except KeypairError as error:
        return _fail(args, f"--authority-keypair: {error}")

    def sign(engine: Engine) -> int:
        try:
            signed = sign_stored_market(engine, args.market_id, authority)
        except MarketError as error:
            return _fail(args, f"--authority-keypair: {error.reason}")
        print(f"market {signed.market_id} signed by {authority.pubkey()}")
        return EXIT_OK

    return _with_engine(args, sign)


def _authority(args: argparse.Namespace, settlement_authority: Pubkey) -> Keypair | None:
    """The --authority-keypair, once it is the settlement authority's; None (said) if not."""
    try:
        authority = load_keypair(args.authority_keypair)
    except KeypairError as error:
        _fail(args, f"--authority-keypair: {error}")
        return None
    if authority.pubkey() != settlement_authority:
        _fail(
            args,
            f"--authority-keypair: the keypair is {authority.pubkey()}, not the "
            f"--settlement-authority {settlement_authority}: it could not sign the market",
        )
        return None
    return authority


def handle_list(args: argparse.Namespace) -> int:
    def show(engine: Engine) -> int:
        markets = list_markets(engine)
        if args.json:
            print(json.dumps([market.to_json() for market in markets], indent=2))
            return EXIT_OK
        rows = [
            (
                m.market_id,
                m.base_mint,
                m.base_decimals,
                m.quote_mint,
                m.quote_decimals,
                m.lot_size_atoms,
                m.tick_size_atoms,
                m.settlement_authority,
            )
            for m in markets
        ]
        headers = ("MARKET", "BASE MINT", "DEC", "QUOTE MINT", "DEC", "LOT", "TICK", "AUTHORITY")
        print(format_table(headers, rows))
        return EXIT_OK

    return _with_engine(args, show)


def _with_engine(args: argparse.Namespace, action: Callable[[Engine], int]) -> int:
    """Open the node's database (schema checked), run ``action``, close it; a storage
    or settings error is a message and exit 1."""
    from crank_node.cli.config import settings_from_args  # noqa: PLC0415  (loads pydantic only here)

    try:
        engine = open_engine(settings_from_args(args).db_url)
    except CrankError as error:
        return _fail(args, str(error))
    try:
        check_schema(engine)
        return int(action(engine))
    except DuplicateEntry as error:
        return _fail(
            args, _with_flag(error.field, f"a market with this id exists ({error.value!r})")
        )
    except CrankError as error:
        return _fail(args, str(error))
    finally:
        engine.dispose()


_PROGRAM_NAMES = {"spl-token": TOKEN_PROGRAM_ID, "token-2022": TOKEN_2022_PROGRAM_ID}


def _program(field: str, text: str | None) -> Pubkey | None:
    if text is None:
        return None
    if text in _PROGRAM_NAMES:
        return _PROGRAM_NAMES[text]
    try:
        program = Pubkey.from_string(text)
    except ValueError:
        raise InvalidMarket(field, "must be spl-token, token-2022 or a program id") from None
    if program not in _PROGRAM_NAMES.values():
        raise InvalidMarket(field, f"{text} is not the SPL Token or the Token-2022 program")
    return program


def _rpc_url(args: argparse.Namespace) -> str:
    from crank_node.cli.config import settings_from_args  # noqa: PLC0415  (pydantic only here)

    return settings_from_args(args).rpc_urls[0]


def _checked_on_chain(url: str, market: Market, programs: dict[str, Pubkey | None]) -> Market:
    """``market`` with each mint's program as the chain says; raises InvalidMarket naming
    the field when a mint is missing, of another program or decimals, or refused."""
    from crank_node.cli.chain import fetch_account  # noqa: PLC0415  (solana-py only here)

    found: dict[str, Pubkey] = {}
    for side in ("base", "quote"):
        field = f"{side}_mint"
        address: Pubkey = getattr(market, field)
        account = fetch_account(url, address)
        if account is None:
            raise InvalidMarket(field, f"{address} does not exist on chain (at {url}, confirmed)")
        mint = decode_mint(field, address, account[0], account[1])
        refusal = mint_refusal(
            field, mint, decimals=getattr(market, f"{side}_decimals"), token_program=programs[side]
        )
        if refusal is not None:
            raise refusal
        found[side] = mint.token_program
    return replace(market, base_token_program=found["base"], quote_token_program=found["quote"])


def _created(market: Market) -> str:
    return "\n".join(
        [f"market {market.market_id} created"]
        + [f"  {key}: {value}" for key, value in market.to_json().items() if key != "market_id"]
    )


def _with_flag(field: str, reason: str) -> str:
    flag = "--id" if field == "market_id" else "--" + field.replace("_", "-")
    return f"{field} ({flag}): {reason}"


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"crank-node market {args.market_action}: error: {message}", file=sys.stderr)
    return EXIT_FAILED
