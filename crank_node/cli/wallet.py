"""crank-node wallet: the node's keypair file (settlement authority and fee payer).

    crank-node wallet new PATH                 a new keypair, mode 0600; prints the public key
    crank-node wallet show PATH [--rpc-url U]  the public key (and the balance in SOL)
    crank-node wallet airdrop PATH --sol N --rpc-url U
                                               ask a devnet/testnet/localnet faucet for SOL

The file is a Solana CLI keypair (a JSON array of 64 integers), readable by its
owner only; a key made with ``solana-keygen new -o PATH`` works the same (that
is how to import one: ``chmod 600`` it and ``wallet show`` it). The secret key is
never printed or logged. ``new`` refuses a path that exists: a wallet is never
overwritten.

Exit codes: 0 done; 1 refused (the message says why) or the chain failed; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from supervision.errors import CrankError

__all__ = ["register"]

EXIT_OK = 0
EXIT_FAILED = 1
LAMPORTS_PER_SOL = 1_000_000_000


def register(subparsers: Any) -> None:
    """Add the ``wallet`` command group to ``crank-node``'s subparsers."""
    parser = subparsers.add_parser(
        "wallet",
        help="create a node wallet (0600), show its public key and balance, airdrop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="wallet_action", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="write a new keypair file (mode 0600)")
    new.add_argument("path", type=Path, metavar="PATH")
    new.set_defaults(handler=handle_new)
    show = actions.add_parser("show", help="print the public key (and the balance)")
    show.add_argument("path", type=Path, metavar="PATH")
    show.add_argument("--rpc-url", metavar="URL", help="also print the balance read there")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=handle_show)
    airdrop = actions.add_parser("airdrop", help="requestAirdrop (devnet, testnet, localnet)")
    airdrop.add_argument("path", type=Path, metavar="PATH")
    airdrop.add_argument("--sol", type=float, required=True, metavar="N", help="how much")
    airdrop.add_argument("--rpc-url", required=True, metavar="URL")
    airdrop.set_defaults(handler=handle_airdrop)


def handle_new(args: argparse.Namespace) -> int:
    from solders.keypair import Keypair  # noqa: PLC0415  (solders is slow to import)

    path: Path = args.path.expanduser()
    keypair = Keypair()
    try:
        # Created owner-only from the start (O_EXCL: never over an existing file).
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _fail(args, f"{path} exists; a wallet is never overwritten (choose another path)")
    except OSError as error:
        return _fail(args, f"cannot create {path}: {error.strerror}")
    with os.fdopen(descriptor, "w") as handle:
        json.dump(list(bytes(keypair)), handle)
    print(f"wallet {path} created (mode 0600)")
    print(f"public key: {keypair.pubkey()}")
    return EXIT_OK


def handle_show(args: argparse.Namespace) -> int:
    try:
        keypair = _load(args.path)
        shown: dict[str, Any] = {"path": str(args.path), "pubkey": str(keypair.pubkey())}
        if args.rpc_url:
            from crank_node.cli.chain import lamports_of  # noqa: PLC0415

            shown["lamports"] = lamports_of(args.rpc_url, keypair.pubkey())
    except CrankError as error:
        return _fail(args, str(error))
    if args.json:
        print(json.dumps(shown, indent=2))
        return EXIT_OK
    print(f"public key: {shown['pubkey']}")
    if "lamports" in shown:
        print(
            f"balance: {shown['lamports'] / LAMPORTS_PER_SOL:.9f} SOL "
            f"({shown['lamports']} lamports)"
        )
    return EXIT_OK


def handle_airdrop(args: argparse.Namespace) -> int:
    from crank_node.cli.chain import airdrop, lamports_of  # noqa: PLC0415

    lamports = round(args.sol * LAMPORTS_PER_SOL)
    if not 0 < lamports <= 100 * LAMPORTS_PER_SOL:
        return _fail(args, f"--sol must be in (0, 100], got {args.sol}")
    try:
        keypair = _load(args.path)
        before = lamports_of(args.rpc_url, keypair.pubkey())
        signature = airdrop(args.rpc_url, keypair.pubkey(), lamports)
    except CrankError as error:
        return _fail(args, str(error))
    print(f"airdrop of {lamports} lamports requested: {signature}")
    print(
        f"balance before: {before} lamports; check with: crank-node wallet show {args.path} "
        f"--rpc-url {args.rpc_url}"
    )
    return EXIT_OK


def _load(path: Path) -> Any:
    from crank_node.node.keypairs import load_keypair  # noqa: PLC0415

    return load_keypair(path)


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"crank-node wallet {args.wallet_action}: error: {message}", file=sys.stderr)
    return EXIT_FAILED
