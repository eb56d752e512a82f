"""The graph benchmark runs end to end on a tiny history and reports every figure."""

from __future__ import annotations

from click.testing import CliRunner
from conftest import ROOT

from chute.bench.graph_scale import main


def test_graph_scale_prints_every_figure() -> None:
    result = CliRunner().invoke(main, ["--files", "150", "--snapshots", "4", "--runs", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    for label in (
        "triples",
        "MB on disk",
        "write one snapshot",
        "query in process",
        "whole command",
    ):
        assert label in out
    for query in (ROOT / "examples" / "queries").glob("*.rq"):
        assert f"  {query.name}" in out, query.name
