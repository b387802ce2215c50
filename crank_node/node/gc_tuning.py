"""The garbage collector's thresholds for a node process.

CPython collects its youngest generation after every 700 net container allocations,
and each such collection also counts towards the older generations'. A node
allocates that many objects every few messages (rows, dataclasses, JSON), so it ran
the collector thousands of times a second; ``perf`` put ~6% of a node's CPU in the
collector (``gc_collect_main``, ``visit_decref``, ``visit_reachable``).
``benchmarks/pipeline_bench.py``, one run each, back to back (ms of the node's CPU
per settled fill, burst / steady 300 fills/s): Python's 700 gave 1.47 / 1.85; 10,000
gave 1.31 / 1.72; 20,000 gave 1.27 / 1.78; 50,000 gave 1.28 / 1.77. Nothing is kept
longer than a collection later: a cycle waits for up to ~10,000 allocations instead
of 700, a few MB at most.

``crank-node run`` sets them before the node starts; ``GET /status`` shows them
under ``runtime.gc`` with the collections counted so far.
"""

from __future__ import annotations

import gc
from typing import Any

__all__ = ["NODE_GC_THRESHOLDS", "gc_status", "tune_garbage_collector"]

# (youngest, middle, oldest): the youngest raised from 700; the older two keep
# CPython's ratios (each collected once per 10 collections of the one below it).
NODE_GC_THRESHOLDS = (10_000, 10, 10)


def tune_garbage_collector() -> tuple[int, int, int]:
    """Set :data:`NODE_GC_THRESHOLDS` for this process; the thresholds it replaced."""
    before = gc.get_threshold()
    gc.set_threshold(*NODE_GC_THRESHOLDS)
    return before


def gc_status() -> dict[str, Any]:
    """The collector's thresholds and its collections so far, per generation."""
    return {
        "threshold": list(gc.get_threshold()),
        "collections": [generation["collections"] for generation in gc.get_stats()],
    }
