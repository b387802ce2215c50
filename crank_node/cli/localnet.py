"""``crank-node localnet``: serve an embedded Solana cluster (LiteSVM) over JSON-RPC.

    crank-node localnet --port 8899 --endpoints 3 --slot-ms 400 \\
        --wallet alice --wallet bob --mint usdc:6 --mint sol:9 \\
        --token-account alice:usdc:1000000000 --token-account bob:sol:5000000000 \\
        --approve alice:usdc:DELEGATE_ADDRESS:1000000000 --keys-dir var/keys

Endpoints listen on loopback from --port, over one ledger; each serves
WebSocket PubSub on its port + 1 (as a Solana node does, where web3.js looks),
so JSON-RPC ports step by 2 (8899, 8901...). ``--pubsub-port-offset 0`` turns
PubSub off (ports then consecutive). Each also serves the admin routes (``/admin/faults``,
``/admin/slots``, ``/admin/status``). ``--slot-ms 0`` produces slots only when
asked (``POST /admin/slots``). It runs until SIGINT or SIGTERM.

``--faults N:JSON`` starts endpoint N with faults (the body ``POST /admin/faults``
takes), e.g. one URL over two backends that disagree, one lagging, one pruned:

    crank-node localnet --endpoints 2 --faults \
        '1:{"backends": [{"lag_slots": 10}, {"prune_history_slots": 200}]}'
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from localnet import Faults, InvalidFaults, LocalnetConfig, LocalnetError, LocalnetServer
from localnet.fixture_spec import FixtureSpec, apply_fixture_spec

__all__ = ["parse_endpoint_faults", "register", "run_localnet", "serve"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add the ``localnet`` command to ``crank-node``'s subparsers."""
    parser = subparsers.add_parser(
        "localnet",
        help="serve a local Solana JSON-RPC cluster (LiteSVM)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = LocalnetConfig()
    parser.add_argument("--host", default=defaults.host, help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=defaults.port, help="first endpoint's port")
    parser.add_argument("--endpoints", type=int, default=defaults.endpoints, help="how many")
    parser.add_argument(
        "--slot-ms", type=int, default=defaults.slot_ms, help="slot time; 0 = on request only"
    )
    parser.add_argument(
        "--finalization-slots",
        type=int,
        default=defaults.finalization_depth_slots,
        help="slots finalized trails confirmed by",
    )
    parser.add_argument(
        "--pubsub-port-offset",
        type=int,
        default=defaults.pubsub_port_offset,
        help="PubSub port = JSON-RPC port + this (0 = no PubSub)",
    )
    parser.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="N:JSON",
        help="endpoint N starts with these faults (as POST /admin/faults takes them)",
    )
    _add_fixture_options(parser)
    parser.set_defaults(handler=run_localnet)


def _add_fixture_options(parser: argparse.ArgumentParser) -> None:
    fixtures = parser.add_argument_group("fixtures (created at start, in this order)")
    repeat: dict[str, Any] = {"action": "append", "default": []}
    fixtures.add_argument("--wallet", metavar="NAME[:SOL]", help="a funded wallet", **repeat)
    fixtures.add_argument("--mint", metavar="NAME:DECIMALS", help="an SPL mint", **repeat)
    fixtures.add_argument(
        "--token-account", metavar="WALLET:MINT[:AMOUNT]", help="an ATA, minted into", **repeat
    )
    fixtures.add_argument(
        "--approve", metavar="WALLET:MINT:DELEGATE:AMOUNT", help="an SPL Approve", **repeat
    )
    fixtures.add_argument("--keys-dir", type=Path, help="read/write keypairs here (NAME.json)")
    fixtures.add_argument("--fixtures-out", type=Path, help="write the fixture addresses (JSON)")


def run_localnet(args: argparse.Namespace) -> int:
    """The command's handler: serve until SIGINT or SIGTERM."""
    stop = threading.Event()
    previous = _on_stop_signals(lambda *_: stop.set())
    try:
        return serve(args, stop, sys.stdout)
    finally:
        _restore_signals(previous)


def serve(args: argparse.Namespace, stop: threading.Event, out: TextIO) -> int:
    """Start the localnet ``args`` describe, announce it on ``out``, serve until ``stop``."""
    try:
        config = LocalnetConfig(
            host=args.host,
            port=args.port,
            endpoints=args.endpoints,
            slot_ms=args.slot_ms,
            finalization_depth_slots=args.finalization_slots,
            endpoint_faults=parse_endpoint_faults(args.faults, args.endpoints),
            pubsub_port_offset=args.pubsub_port_offset,
        )
        spec = FixtureSpec.parse(args.wallet, args.mint, args.token_account, args.approve)
    except LocalnetError as error:
        print(f"crank-node localnet: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with LocalnetServer(config) as localnet:
            report = apply_fixture_spec(localnet.fixtures, spec, args.keys_dir)
            _announce(localnet, report, args.fixtures_out, out)
            stop.wait()
    except LocalnetError as error:
        print(f"crank-node localnet: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def parse_endpoint_faults(raw: list[str], endpoints: int) -> tuple[Faults, ...]:
    """``N:JSON`` options as the faults of each endpoint by index (healthy if not named)."""
    chosen: dict[int, Faults] = {}
    for option in raw:
        index_text, _, body = option.partition(":")
        try:
            index = int(index_text)
        except ValueError:
            raise InvalidFaults(
                f"--faults {option!r}: expected N:JSON, N an endpoint index"
            ) from None
        if not 0 <= index < endpoints:
            raise InvalidFaults(f"--faults: endpoint {index} is not in 0..{endpoints - 1}")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise InvalidFaults(f"--faults {index}: the faults are not valid JSON") from None
        try:
            chosen[index] = Faults.from_json(parsed)
        except InvalidFaults as error:
            raise InvalidFaults(f"--faults {index}: {error}") from None
    if not chosen:
        return ()
    return tuple(chosen.get(index, Faults()) for index in range(max(chosen) + 1))


def _announce(
    localnet: LocalnetServer, report: dict[str, Any], fixtures_out: Path | None, out: TextIO
) -> None:
    summary = {
        "urls": list(localnet.urls),
        "pubsub_urls": list(localnet.pubsub_urls),
        "slot_ms": localnet.config.slot_ms,
        **report,
    }
    if fixtures_out is not None:
        fixtures_out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), file=out, flush=True)


_Handler = Callable[[int, FrameType | None], Any] | int | None


def _on_stop_signals(handler: Callable[[int, FrameType | None], Any]) -> dict[int, _Handler]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
