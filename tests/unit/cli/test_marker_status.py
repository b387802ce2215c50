"""Settlement markers in /metrics and in ``crank-node status`` (crank_node/node/metrics.py, crank_node/cli/status.py)."""

from __future__ import annotations

from crank_node.cli.status import format_status
from tests.unit.cli import fake_status
from tests.unit.cli.test_metrics import scrape

MARKERS = {
    "open": 3,
    "reclaiming": 2,
    "lamports_held": 5 * 890_880,
    "reclaimed": 7,
    "lamports_reclaimed": 7 * 890_880,
    "missing": 1,
}


def test_markers_open_lamports_held_and_reclaimed_are_metrics() -> None:
    """The /status markers part becomes gauges (open by state, lamports held) and
    counters (reclaimed, lamports reclaimed, missing)."""
    samples = scrape(fake_status.status(markers=MARKERS))
    assert samples["crank_markers_open"] == {
        (("state", "open"),): 3.0,
        (("state", "reclaiming"),): 2.0,
    }
    assert samples["crank_marker_lamports_held"][()] == 5 * 890_880
    assert samples["crank_markers_reclaimed_total"][()] == 7.0
    assert samples["crank_marker_lamports_reclaimed_total"][()] == 7 * 890_880
    assert samples["crank_markers_missing_total"][()] == 1.0
    assert samples["crank_status_part_up"][(("part", "markers"),)] == 1.0


def test_markers_that_could_not_be_read_are_reported_down_not_zero() -> None:
    """A markers part holding an error yields no marker metrics and part_up 0."""
    samples = scrape(fake_status.status(markers={"error": "DatabaseUnavailable()"}))
    assert "crank_markers_open" not in samples
    assert samples["crank_status_part_up"][(("part", "markers"),)] == 0.0


def test_status_prints_the_markers_table() -> None:
    """``crank-node status`` shows markers open, reclaiming, lamports held and reclaimed."""
    text = format_status(fake_status.status(markers=MARKERS))
    section = text.split("Settlement markers (all nodes)\n", 1)[1]
    assert "lamports held                    4454400" in section
    assert "reclaimed                        7" in section
    assert "missing (gone, never reclaimed)  1" in section
