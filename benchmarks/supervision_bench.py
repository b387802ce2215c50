"""Supervision runtime benchmark: prints figures, asserts nothing.

In one run, on this machine, as ratios against raw pykka:
  * tell throughput (N tells, then one ask to wait for the last);
  * ask round-trip (sequential asks);
for a supervised CrankActor reached through its ActorHandle with tracing off,
and with tracing on (two trace lines per message, written to a JSON file in batches);
and restart latency: from the moment a supervised actor raises to the moment
its replacement handles its first message (median, p99).

The machine is shared and noisy, so the three set-ups are measured
interleaved, round after round, and each ratio is the median of the per-round
ratios (raw pykka measured in the same round is the baseline). Timings with
tracing on include writing every trace line (``flush_traces``). Run:

    python3 benchmarks/supervision_bench.py [--messages 50000] [--restarts 300] [--otel]

``--otel`` adds two set-ups: tracing on with the OpenTelemetry export
(supervision/otel.py) posting spans over OTLP/HTTP to a collector stand-in in
another process (it decodes and counts them), with the trace lines, and without
them (spans only: what `crank-node run` does with ``otel_endpoint`` and no
``trace``); the figures do not include the export thread's own work after the
flush, and the spans the collector got are counted (the SDK's bounded queue drops
the rest).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervision import (
    ActorHandle,
    BackoffPolicy,
    ChildSpec,
    CrankActor,
    RestartIntensity,
    RootRunner,
    Supervisor,
    set_tracing,
)
from supervision.logs import configure_logging
from supervision.tracing import flush_traces

SYNC = "sync"


class RawCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count if message == SYNC else None


class SupervisedCounter(CrankActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count if message == SYNC else None


def best_of(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def tell_seconds(tell: Callable[[Any], Any], ask: Callable[[Any], Any], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        tell(i)
    ask(SYNC)
    return time.perf_counter() - started


def ask_seconds(ask: Callable[[Any], Any], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        ask(i)
    return time.perf_counter() - started


def measure_raw(n: int, repeats: int) -> tuple[float, float]:
    ref = RawCounter.start()
    try:
        tell = best_of(repeats, lambda: tell_seconds(ref.tell, ref.ask, n))
        ask = best_of(repeats, lambda: ask_seconds(ref.ask, n // 10))
    finally:
        ref.stop()
    return n / tell, (n // 10) / ask


def measure_supervised(n: int, repeats: int) -> tuple[float, float]:
    """Timings include writing every trace line (flush_traces) when tracing is on."""
    spec = ChildSpec(id="counter", factory=SupervisedCounter, liveness_timeout_s=None)
    runner = RootRunner(lambda: Supervisor([spec], name="bench"))
    runner.start()
    handle: ActorHandle = spec.handle

    def ask(message: Any) -> Any:
        reply = handle.ask(message).get(timeout=60)
        if message == SYNC:
            flush_traces(60)
        return reply

    def ask_each(message: Any) -> Any:
        return handle.ask(message).get(timeout=60)

    try:
        tell = best_of(repeats, lambda: tell_seconds(handle.tell, ask, n))
        asks = best_of(repeats, lambda: ask_seconds(ask_each, n // 10) + flush_seconds())
    finally:
        runner.stop(30)
    return n / tell, (n // 10) / asks


def flush_seconds() -> float:
    started = time.perf_counter()
    flush_traces(60)
    return time.perf_counter() - started


class Crasher(CrankActor):
    """Raises on "crash" (recording when); records when it handles "probe"."""

    crashed_at: float = 0.0
    latencies: list[float] = []  # noqa: RUF012  (shared on purpose: instances are replaced)
    probed = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            Crasher.crashed_at = time.perf_counter()
            raise RuntimeError("benchmark crash")
        if message == "probe":
            Crasher.latencies.append(time.perf_counter() - Crasher.crashed_at)
            Crasher.probed.set()
        return None


def measure_restarts(restarts: int) -> list[float]:
    # An isolated crash: the default backoff restarts at once. reset_after_s=0
    # makes every crash in this loop count as isolated; intensity is lifted so
    # the loop is not cut short by the supervisor giving up.
    spec = ChildSpec(id="crasher", factory=Crasher, liveness_timeout_s=None)
    runner = RootRunner(
        lambda: Supervisor(
            [spec],
            name="bench",
            intensity=RestartIntensity(max_restarts=restarts + 10, within_s=1.0),
            backoff=BackoffPolicy(reset_after_s=0.0),
        )
    )
    runner.start()
    try:
        for _ in range(restarts):
            Crasher.probed.clear()
            spec.handle.tell("crash")
            spec.handle.tell("probe")
            if not Crasher.probed.wait(10):
                raise RuntimeError("replacement never handled its first message")
    finally:
        runner.stop(30)
    return Crasher.latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def loguru_call_seconds(calls: int) -> float:
    """Seconds per bare loguru call into a sink that does nothing: the floor
    that any design writing loguru lines pays, whatever it does around them."""
    logger.remove()
    logger.add(lambda _message: None, level="INFO", format="{message}")
    started = time.perf_counter()
    for _ in range(calls):
        logger.info("x")
    return (time.perf_counter() - started) / calls


# A collector stand-in, in its own process (so its decoding does not share this
# process's GIL): counts the spans of each OTLP/HTTP POST; GET answers the total.
COLLECTOR = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
spans = 0
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global spans
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = ExportTraceServiceRequest.FromString(body)
        spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        body = str(spans).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_collector() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", COLLECTOR], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}"


def spans_collected(endpoint: str) -> int:
    with urllib.request.urlopen(endpoint, timeout=30) as response:
        return int(response.read())


def measure_round(
    n: int, trace_log: Path, otel_endpoint: str | None = None
) -> dict[str, tuple[float, float]]:
    """One interleaved round: raw pykka, supervised tracing off, tracing on,
    (with ``otel_endpoint``: tracing on and exporting spans), and loguru's floor
    (stored as a rate pair: 1/seconds per call, twice)."""
    floor = 1.0 / loguru_call_seconds(n)
    configure_logging(level="WARNING")
    set_tracing(False)
    rates = {"raw": measure_raw(n, 1), "off": measure_supervised(n, 1), "floor": (floor, floor)}
    configure_logging(level="INFO", stream=None, json_path=trace_log)
    set_tracing(True)
    try:
        rates["on"] = measure_supervised(n, 1)
        if otel_endpoint is not None:
            from supervision.otel import start_export  # noqa: PLC0415  (only with --otel)

            export = start_export(otel_endpoint, instance_id="bench")
            try:
                rates["otel"] = measure_supervised(n, 1)
                flush_traces(60)
                set_tracing(True, lines=False)
                rates["spans"] = measure_supervised(n, 1)
            finally:
                flush_traces(60)
                export.shutdown()
    finally:
        set_tracing(False)
        flush_traces(60)
        configure_logging(level="WARNING")
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--restarts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--otel", action="store_true", help="also measure the OTel export")
    args = parser.parse_args()

    collector, endpoint = start_collector() if args.otel else (None, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trace_log = Path(tmp) / "trace.jsonl"
            rounds = [measure_round(args.messages, trace_log, endpoint) for _ in range(args.rounds)]
            lines = sum(1 for _ in trace_log.open())
        spans = spans_collected(endpoint) if endpoint is not None else 0
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(30)
    latencies = measure_restarts(args.restarts)
    configure_logging(level="INFO")

    def median_of(setup: str, column: int) -> float:
        return statistics.median(r[setup][column] for r in rounds)

    def median_ratio(setup: str, column: int) -> float:
        return statistics.median(r[setup][column] / r["raw"][column] for r in rounds)

    print(
        f"supervision benchmark: {args.rounds} interleaved rounds of {args.messages} tells and "
        f"{args.messages // 10} asks; {args.restarts} restarts"
    )
    print(f"{'median of rounds':34}{'tell/s':>12}{'ratio':>8}{'ask/s':>12}{'ratio':>8}")
    labels = {
        "raw": "raw pykka ThreadingActor",
        "off": "supervised, tracing off",
        "on": "supervised, tracing on (JSON file)",
    }
    if args.otel:
        labels["otel"] = "  and OTel spans over OTLP/HTTP"
        labels["spans"] = "OTel spans only (no trace lines)"
    for setup, label in labels.items():  # the floor row is printed separately
        print(
            f"{label:34}{median_of(setup, 0):12,.0f}{median_ratio(setup, 0):8.2f}"
            f"{median_of(setup, 1):12,.0f}{median_ratio(setup, 1):8.2f}"
        )
    ceilings = [1.0 / (1.0 + 2.0 * r["raw"][0] / r["floor"][0]) for r in rounds]
    print(
        f"loguru floor: {median_of('floor', 0):,.0f} bare logger.info calls/s into a no-op sink; "
        f"one loguru call per trace line could not beat {statistics.median(ceilings):.2f}x raw "
        f"tells on this machine (tracing makes one call per batch of lines)"
    )
    print(f"tracing on wrote {lines} trace lines to the last log file (2 per message)")
    if args.otel:
        handled = 2 * args.rounds * (args.messages + 1 + args.messages // 10)
        print(
            f"OTel: the collector got {spans:,} spans of {handled:,} messages handled with "
            f"the export on ({spans / handled:.0%}; the SDK queue drops the rest)"
        )
    print(
        f"restart latency (crash -> replacement handles first message): "
        f"median {statistics.median(latencies) * 1e3:.3f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1e3:.3f} ms, max {max(latencies) * 1e3:.3f} ms"
    )
    print("targets: tracing off >= 0.90x raw, tracing on >= 0.30x raw, restart median < 5 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
