"""crank-node maker: what a maker does once per market before trading.

    crank-node maker approve --keypair MAKER.json --mint MINT --delegate AUTHORITY
                             --amount ATOMS [--account PAY_ACCOUNT] --rpc-url URL
    crank-node maker check --owner MAKER --mint MINT --delegate AUTHORITY
                           [--amount ATOMS] [--account PAY_ACCOUNT] --rpc-url URL

A settlement moves a maker's tokens as the SPL-token delegate of the account the
maker pays from. ``approve`` sends that approval, signed by the maker's keypair
(owner of the account): an ``ApproveChecked`` (Approve with the mint's decimals
checked) under the mint's own program (SPL Token or Token-2022), for ``--amount``
atoms: at least what the maker's open orders owe on that mint (sell orders owe
base atoms, buy orders quote atoms). A new approval replaces the old one; the
node's orders check the delegated amount, so approve again before it runs out.
``--delegate`` is the market's settlement authority (``crank-node market list``
shows it; the node's ``wallet show``). ``--account`` defaults to the maker's
associated token account for the mint.

``check`` reads the account (``confirmed``) and prints its balance, delegate and
delegated amount; it exits 0 when the delegate is ``--delegate`` and the delegated
amount and the balance cover ``--amount`` (default 1 atom), otherwise 1 with the
reason. It needs no keypair: anyone (the maker, the operator) can run it.

Exit codes: 0 done; 1 refused or not approved (the message says why); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

from supervision.errors import CrankError

__all__ = ["register"]

EXIT_OK = 0
EXIT_FAILED = 1


class MakerError(CrankError):
    """The maker's account cannot be approved or does not cover what was asked."""


def register(subparsers: Any) -> None:
    """Add the ``maker`` command group to ``crank-node``'s subparsers."""
    parser = subparsers.add_parser(
        "maker",
        help="approve the market's settlement authority as delegate, and check it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="maker_action", metavar="ACTION", required=True)
    approve = actions.add_parser("approve", help="ApproveChecked the delegate, signed by the maker")
    approve.add_argument(
        "--keypair",
        type=Path,
        required=True,
        metavar="FILE",
        help="the maker's keypair (owner of the pay account)",
    )
    check = actions.add_parser("check", help="is the delegate approved for enough?")
    check.add_argument("--owner", type=_pubkey, required=True, metavar="PUBKEY", help="the maker")
    for action, amount_required in ((approve, True), (check, False)):
        action.add_argument("--mint", type=_pubkey, required=True, metavar="PUBKEY")
        action.add_argument(
            "--delegate",
            type=_pubkey,
            required=True,
            metavar="PUBKEY",
            help="the market's settlement authority",
        )
        action.add_argument(
            "--amount",
            type=_atoms,
            required=amount_required,
            default=None if amount_required else 1,
            metavar="ATOMS",
        )
        action.add_argument(
            "--account",
            type=_pubkey,
            metavar="PUBKEY",
            help="pay account (default: the associated one)",
        )
        action.add_argument("--rpc-url", required=True, metavar="URL")
        action.add_argument("--json", action="store_true", help="print JSON")
    approve.set_defaults(handler=handle_approve)
    check.set_defaults(handler=handle_check)


def handle_approve(args: argparse.Namespace) -> int:
    from spl.token.instructions import approve_checked  # noqa: PLC0415
    from spl.token.models import ApproveCheckedParams  # noqa: PLC0415

    from crank_node.cli.chain import send_and_confirm  # noqa: PLC0415
    from crank_node.node.keypairs import load_keypair  # noqa: PLC0415

    try:
        maker = load_keypair(args.keypair)
        program, decimals = _mint(args.rpc_url, args.mint)
        account = args.account or _associated(maker.pubkey(), args.mint, program)
        _token_account(args.rpc_url, account, program, owner=maker.pubkey(), mint=args.mint)
        instruction = approve_checked(
            ApproveCheckedParams(
                program_id=program,
                source=account,
                mint=args.mint,
                delegate=args.delegate,
                owner=maker.pubkey(),
                amount=args.amount,
                decimals=decimals,
            )
        )
        signature = send_and_confirm(args.rpc_url, [instruction], maker)
    except CrankError as error:
        return _fail(args, str(error))
    shown = {
        "account": str(account),
        "delegate": str(args.delegate),
        "amount": args.amount,
        "signature": str(signature),
    }
    if args.json:
        print(json.dumps(shown, indent=2))
    else:
        print(f"approved {args.delegate} for {args.amount} atoms on {account}: {signature}")
    return EXIT_OK


def handle_check(args: argparse.Namespace) -> int:
    try:
        program, _ = _mint(args.rpc_url, args.mint)
        address = args.account or _associated(args.owner, args.mint, program)
        account = _token_account(args.rpc_url, address, program, owner=args.owner, mint=args.mint)
    except CrankError as error:
        return _fail(args, str(error))
    delegate = None if account.delegate is None else str(account.delegate)
    shown = {
        "account": str(address),
        "balance": account.amount,
        "delegate": delegate,
        "delegated_amount": account.delegated_amount,
        "frozen": account.is_frozen,
    }
    print(json.dumps(shown, indent=2) if args.json else _table(shown))
    problem = _shortfall(account, args.delegate, args.amount)
    if problem is not None:
        return _fail(args, problem)
    return EXIT_OK


def _shortfall(account: Any, delegate: Pubkey, amount: int) -> str | None:
    if account.is_frozen:
        return f"{account.address} is frozen: no settlement can move its tokens"
    if account.delegate != delegate:
        return f"the delegate of {account.address} is {account.delegate}, not {delegate}"
    if account.delegated_amount < amount:
        return f"{delegate} may move {account.delegated_amount} atoms, less than {amount}"
    if account.amount < amount:
        return f"{account.address} holds {account.amount} atoms, less than {amount}"
    return None


def _mint(url: str, mint: Pubkey) -> tuple[Pubkey, int]:
    """The program that keeps ``mint`` and its decimals, from the chain."""
    from crank_node.cli.chain import fetch_account  # noqa: PLC0415
    from market import MarketError  # noqa: PLC0415
    from market.mint import decode_mint  # noqa: PLC0415

    found = fetch_account(url, mint)
    if found is None:
        raise MakerError(f"--mint {mint} does not exist on chain")
    try:
        decoded = decode_mint("mint", mint, found[0], found[1])
    except MarketError as error:
        raise MakerError(f"--mint: {error.reason}") from None
    return decoded.token_program, decoded.decimals


def _associated(owner: Pubkey, mint: Pubkey, program: Pubkey) -> Pubkey:
    from spl.token.instructions import get_associated_token_address  # noqa: PLC0415

    return get_associated_token_address(owner, mint, program)


def _token_account(
    url: str, address: Pubkey, program: Pubkey, *, owner: Pubkey, mint: Pubkey
) -> Any:
    """The decoded token account; refused unless it is ``owner``'s account of ``mint``."""
    from crank_node.cli.chain import fetch_account  # noqa: PLC0415
    from market import MarketError, decode_token_account  # noqa: PLC0415

    found = fetch_account(url, address)
    if found is None:
        raise MakerError(f"token account {address} does not exist on chain")
    try:
        account = decode_token_account(address, found[0], found[1], field="account")
    except MarketError as error:
        raise MakerError(f"token account {address}: {error.reason}") from None
    if found[1] != program or account.mint != mint:
        raise MakerError(f"token account {address} is an account of {account.mint}, not {mint}")
    if account.owner != owner:
        raise MakerError(f"token account {address} belongs to {account.owner}, not {owner}")
    return account


def _table(shown: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in shown.items())


def _pubkey(text: str) -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a base58 public key") from None


def _atoms(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of atoms in 1..2^64-1")
    return int(text)


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"crank-node maker {args.maker_action}: error: {message}", file=sys.stderr)
    return EXIT_FAILED
