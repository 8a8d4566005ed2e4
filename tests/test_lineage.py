"""Lineage walks: upstream and downstream from any node, through several hops."""

from __future__ import annotations

from pathlib import Path

import pytest

import forgeml as fm
from forgeml.errors import InvalidArgumentError
from forgeml.lineage_graph import lineage, node_of, record


def test_walks_both_ways_through_several_hops(any_backend: str) -> None:
    from sklearn.dummy import DummyClassifier

    record(("dataset_version", "flights/1"), ("dataset_version", "flights-clean/1"), "derived")
    with fm.start_run(experiment="flights") as run:
        record(("dataset_version", "flights-clean/1"), run, "used")
        version = fm.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="delay")
    record(version, ("deployment", "delay-prod"), "deployed")
    record(("deployment", "delay-prod"), ("prediction_batch", "2026-11-23"), "served")

    graph = fm.lineage("models:/delay/1")
    assert graph.root == ("model_version", "delay/1")
    assert graph.upstream() == [
        ("run", run.id),
        ("dataset_version", "flights-clean/1"),
        ("dataset_version", "flights/1"),
    ]
    assert graph.downstream() == [("deployment", "delay-prod"), ("prediction_batch", "2026-11-23")]
    assert graph.upstream("dataset_version") == [
        ("dataset_version", "flights-clean/1"),
        ("dataset_version", "flights/1"),
    ]
    from_data = lineage(("dataset_version", "flights/1"), direction="down")
    assert ("prediction_batch", "2026-11-23") in from_data.downstream()
    assert from_data.upstream_edges == []
    near = lineage(version, depth=1)
    assert near.upstream() == [("run", run.id)]
    assert near.downstream() == [("deployment", "delay-prod")]
    as_dict = graph.to_dict()
    assert as_dict["root"] == {"type": "model_version", "id": "delay/1"}
    assert {e["relation"] for e in as_dict["upstream"]} == {"produced", "used", "derived"}
    assert "produced" in str(graph)


def test_cycles_terminate(home: Path) -> None:
    record(("a", "1"), ("b", "1"), "x")
    record(("b", "1"), ("a", "1"), "y")
    graph = lineage(("a", "1"))
    assert graph.downstream() == [("b", "1"), ("a", "1")]
    assert len(graph.downstream_edges) == 2


def test_node_of_and_bad_arguments(home: Path) -> None:
    with fm.start_run() as run:
        pass
    assert node_of(run) == ("run", run.id)
    assert node_of(f"runs:/{run.id[:8]}") == ("run", run.id)
    with pytest.raises(InvalidArgumentError, match="cannot find the lineage of 42"):
        node_of(42)
    with pytest.raises(InvalidArgumentError, match="direction"):
        lineage(run, direction="sideways")
    with pytest.raises(InvalidArgumentError, match="depth"):
        lineage(run, depth=0)
