"""`crank-node run`: start the node and run it until stopped.

Exit codes: 0 clean stop; 1 bad configuration (or a database the node cannot
use: the message says what fixes it); 2 the supervision tree gave up (restart
intensity exceeded at the root); 3 the shutdown deadline was exceeded.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

# crank_node.cli.main imports this module only to run `run`, so the heavy imports below
# (database, chain, HTTP) cost nothing to the other commands.
from crank_node.cli.config import add_settings_arguments, settings_from_args
from crank_node.node.gc_tuning import tune_garbage_collector
from crank_node.node.health import HealthServer
from crank_node.node.node import Node
from supervision import set_tracing
from supervision.errors import CrankError
from supervision.logs import configure_logging
from supervision.root import EXIT_DEADLINE, EXIT_GAVE_UP, EXIT_OK
from supervision.shutdown import ShutdownCoordinator
from supervision.tracing import flush_traces

if TYPE_CHECKING:
    from solders.keypair import Keypair

    from crank_node.node.settings import CrankSettings
    from supervision.otel import SpanExport

EXIT_BAD_CONFIG = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the node until SIGTERM/SIGINT",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_settings_arguments(parser)
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"crank-node run: error: {message}", file=sys.stderr)
    return EXIT_BAD_CONFIG


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        # The node signs its settlements with the wallet: it cannot run without one.
        wallet = settings.load_wallet()
    except CrankError as error:
        return _fail(str(error))
    configure_logging(level=settings.log_level, json_path=settings.log_json_path)
    set_tracing(settings.trace)
    try:
        spans = _start_otel(settings)
    except ImportError as error:
        return _fail(
            f"otel_endpoint is set but OpenTelemetry is not installed ({error}); "
            "install the extra: pip install 'crank-node[otel]'"
        )
    try:
        return _run_node(settings, wallet)
    finally:
        if spans is not None:
            flush_traces(5.0)  # the last trace events reach the exporter first
            spans.shutdown()


def _start_otel(settings: CrankSettings) -> SpanExport | None:
    """With ``otel_endpoint`` set: trace events on, exported as spans (written as log
    lines too only with ``trace``). Unset, the OpenTelemetry SDK is never imported."""
    if settings.otel_endpoint is None:
        return None
    from supervision.otel import start_export  # noqa: PLC0415  (only when enabled)

    set_tracing(True, lines=settings.trace)
    export = start_export(settings.otel_endpoint, instance_id=settings.instance_id)
    logger.bind(action="node.otel", endpoint=settings.otel_endpoint).info(
        f"exporting trace spans to {settings.otel_endpoint}"
    )
    return export


def _run_node(settings: CrankSettings, wallet: Keypair) -> int:
    log = logger.bind(node_id=settings.instance_id)
    log.bind(action="node.wallet", pubkey=str(wallet.pubkey())).info("wallet loaded")
    tune_garbage_collector()  # a node's process only (crank_node.node.gc_tuning)
    node = Node(settings, signers=(wallet,))
    try:
        # Before anything starts: an unusable operator token file is a bad configuration.
        server = HealthServer.from_settings(node, settings)
    except CrankError as error:
        return _fail(str(error))
    coordinator = ShutdownCoordinator(
        node.shutdown_phases(), deadline_s=settings.shutdown_timeout_s
    )
    coordinator.install_signal_handlers(dump=node.dump)
    try:
        node.start(cancel=coordinator.requested)
    except CrankError as error:
        node.emergency_stop()
        return _fail(str(error))
    try:
        server.start()
    except OSError as error:
        coordinator.run()
        return _fail(str(error))
    host, port = server.host, server.port
    intake = f"{server.intake_host}:{server.intake_port}"
    log.bind(action="node.ready", http=f"{host}:{port}", intake=intake).info(
        f"node {settings.instance_id} ready; health on http://{host}:{port}/health, "
        f"order intake on http://{intake}"
    )
    return _wait_and_stop(node, coordinator, server)


def _wait_and_stop(node: Node, coordinator: ShutdownCoordinator, server: HealthServer) -> int:
    runner = node.runner
    assert runner is not None  # started above
    # Signals are handled on the main thread between these bounded waits.
    while not coordinator.requested.is_set() and not runner.wait(0.5):
        pass
    if not coordinator.requested.is_set():
        node.emergency_stop()
        server.stop()
        logger.bind(action="node.exit", code=EXIT_GAVE_UP).critical(
            "the supervision tree gave up; exiting 2 so the service manager restarts the node"
        )
        return EXIT_GAVE_UP
    reports = coordinator.run()
    server.stop()
    summary = ", ".join(f"{r.name} {r.outcome} {r.seconds}s" for r in reports)
    code = EXIT_DEADLINE if coordinator.deadline_exceeded else EXIT_OK
    drained = node.drain_report
    logger.bind(
        action="node.stopped", code=code, hurried=coordinator.hurry.is_set(), **drained
    ).info(
        f"stopped (exit {code}): {summary}; settlements drained: "
        f"{drained.get('drained', 0)}, left for recovery: {drained.get('left_for_recovery', 0)}; "
        f"leases released"
    )
    return code
