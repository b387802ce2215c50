"""Where `crank-node chaos` writes its timeline: beside the JSON report with its stem,
or in the workdir without one; nothing when the run drew none."""

from __future__ import annotations

import argparse
from pathlib import Path
from xml.etree import ElementTree

from crank_node.chaos.report import ChaosReport, ChaosShape
from crank_node.chaos.timeline import NodeLane, Timeline
from crank_node.cli.chaos import write_timeline
from crank_node.demo.orders import SubmissionTally
from crank_node.demo.progress import DemoCounts


def _report(tmp_path: Path, timeline: Timeline | None) -> ChaosReport:
    shape = ChaosShape(
        nodes=2,
        markets=2,
        makers=2,
        duration_s=10.0,
        seed=3,
        rate_per_s=1.0,
        slot_ms=100,
        lease_ttl_ms=3000,
        membership_interval_ms=1000,
        database="sqlite",
        workdir=str(tmp_path),
    )
    counts = DemoCounts(orders=0, fills=0, settled=0, failed=0, pending=0)
    return ChaosReport(shape, (), (), counts, SubmissionTally(), 10.0, 12.0, timeline=timeline)


def _args(tmp_path: Path, report_json: Path | None) -> argparse.Namespace:
    return argparse.Namespace(report_json=report_json, workdir=tmp_path / "work")


TIMELINE = Timeline(3, 12.0, (NodeLane("chaos-node-1"), NodeLane("chaos-node-2")))


def test_the_timeline_goes_beside_the_json_report_with_its_stem(tmp_path: Path) -> None:
    path = write_timeline(
        _report(tmp_path, TIMELINE), _args(tmp_path, tmp_path / "out" / "run-7.json")
    )
    assert path == tmp_path / "out" / "run-7.svg"
    root = ElementTree.fromstring(path.read_text())
    assert len(root.findall("{http://www.w3.org/2000/svg}g[@class='lane']")) == 2


def test_without_a_json_report_the_timeline_goes_to_the_workdir(tmp_path: Path) -> None:
    path = write_timeline(_report(tmp_path, TIMELINE), _args(tmp_path, None))
    assert path == tmp_path / "work" / "timeline.svg" and path.exists()


def test_no_timeline_no_file(tmp_path: Path) -> None:
    assert write_timeline(_report(tmp_path, None), _args(tmp_path, None)) is None
    assert not (tmp_path / "work").exists()
