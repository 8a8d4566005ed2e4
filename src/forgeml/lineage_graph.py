"""Lineage: record where things came from, and walk it from any object, both ways.

Every capability writes edges with :func:`record` (a dataset version used by a run, a
run that produced a model version, a deployment serving it...). :func:`lineage` walks
upstream (what it was made from) and downstream (what was made from it) from any of
them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from forgeml import backend
from forgeml.errors import InvalidArgumentError
from forgeml.store.records import LineageEdge

Node = tuple[str, str]

__all__ = ["LineageEdge", "LineageGraph", "Node", "lineage", "node_of", "record"]


@runtime_checkable
class HasLineageNode(Protocol):
    """Objects of later capabilities (datasets, deployments...) name their own node."""

    def __lineage_node__(self) -> Node: ...


def node_of(obj: Any) -> Node:
    """The lineage node of a run, model version, ``models:/`` or ``runs:/`` URI, or (type, id)."""
    from forgeml.store.records import ModelVersion, Run
    from forgeml.tracking.active_run import ActiveRun

    if isinstance(obj, HasLineageNode):
        return obj.__lineage_node__()
    if isinstance(obj, Run | ActiveRun):
        return ("run", obj.id)
    if isinstance(obj, ModelVersion):
        return ("model_version", f"{obj.model}/{obj.version}")
    if isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(p, str) for p in obj):
        return (obj[0], obj[1])
    if isinstance(obj, str):
        if obj.startswith("models:/"):
            from forgeml.registry.api import get_model_version

            version = get_model_version(obj)
            return ("model_version", f"{version.model}/{version.version}")
        if obj.startswith("runs:/"):
            return ("run", backend.runs().resolve_run_id(obj.removeprefix("runs:/").strip("/")))
    raise InvalidArgumentError(
        f"cannot find the lineage of {obj!r}: pass a run, a model version, a models:/ or "
        "runs:/ URI, or a (type, id) pair"
    )


def record(
    source: Any,
    target: Any,
    relation: str,
    properties: dict[str, Any] | None = None,
) -> LineageEdge:
    """Record that ``source`` led to ``target`` (e.g. a run ``produced`` a model version)."""
    src, dst = node_of(source), node_of(target)
    edge = LineageEdge(src[0], src[1], dst[0], dst[1], relation, time.time(), properties)
    backend.lineage().add_edges([edge])
    return edge


@dataclass
class LineageGraph:
    """The part of the lineage graph reachable from ``root`` upstream and downstream."""

    root: Node
    upstream_edges: list[LineageEdge] = field(default_factory=list)
    downstream_edges: list[LineageEdge] = field(default_factory=list)

    @property
    def edges(self) -> list[LineageEdge]:
        return [*self.upstream_edges, *self.downstream_edges]

    def upstream(self, node_type: str | None = None) -> list[Node]:
        """Nodes the root was derived from, nearest first."""
        return _ordered(
            {(e.src_type, e.src_id) for e in self.upstream_edges},
            self.upstream_edges,
            "src",
            node_type,
        )

    def downstream(self, node_type: str | None = None) -> list[Node]:
        """Nodes derived from the root, nearest first."""
        return _ordered(
            {(e.dst_type, e.dst_id) for e in self.downstream_edges},
            self.downstream_edges,
            "dst",
            node_type,
        )

    def to_dict(self) -> dict[str, Any]:
        def edge(e: LineageEdge) -> dict[str, Any]:
            return {
                "source": {"type": e.src_type, "id": e.src_id},
                "target": {"type": e.dst_type, "id": e.dst_id},
                "relation": e.relation,
                "created_at": e.created_at,
                "properties": e.properties,
            }

        return {
            "root": {"type": self.root[0], "id": self.root[1]},
            "upstream": [edge(e) for e in self.upstream_edges],
            "downstream": [edge(e) for e in self.downstream_edges],
        }

    def __str__(self) -> str:
        lines = [f"{self.root[0]} {self.root[1]}"]
        lines += [f"  <- {e.relation} <- {e.src_type} {e.src_id}" for e in self.upstream_edges]
        lines += [f"  -> {e.relation} -> {e.dst_type} {e.dst_id}" for e in self.downstream_edges]
        return "\n".join(lines)


def _ordered(
    nodes: set[Node], edges: Iterable[LineageEdge], end: str, node_type: str | None
) -> list[Node]:
    seen: list[Node] = []
    for e in edges:  # edges come out of the walk in breadth-first order
        node = (e.src_type, e.src_id) if end == "src" else (e.dst_type, e.dst_id)
        if node in nodes and node not in seen and (node_type is None or node[0] == node_type):
            seen.append(node)
    return seen


def _walk(root: Node, direction: str, depth: int | None) -> list[LineageEdge]:
    repo = backend.lineage()
    visited = {root}
    frontier = [root]
    collected: list[LineageEdge] = []
    seen_edges: set[tuple[str, str, str, str, str]] = set()
    level = 0
    while frontier and (depth is None or level < depth):
        next_frontier: deque[Node] = deque()
        for e in repo.edges_touching(frontier, direction):
            key = (e.src_type, e.src_id, e.dst_type, e.dst_id, e.relation)
            if key in seen_edges:
                continue
            seen_edges.add(key)
            collected.append(e)
            other = (e.src_type, e.src_id) if direction == "up" else (e.dst_type, e.dst_id)
            if other not in visited:
                visited.add(other)
                next_frontier.append(other)
        frontier = list(next_frontier)
        level += 1
    return collected


def lineage(obj: Any, direction: str = "both", depth: int | None = None) -> LineageGraph:
    """Walk the lineage of ``obj``: ``direction`` is "up", "down" or "both"."""
    if direction not in ("up", "down", "both"):
        raise InvalidArgumentError(f"direction must be 'up', 'down' or 'both', got {direction!r}")
    if depth is not None and depth < 1:
        raise InvalidArgumentError(f"depth must be at least 1, got {depth!r}")
    from forgeml.tracking.fluent import flush

    flush()
    root = node_of(obj)
    graph = LineageGraph(root)
    if direction in ("up", "both"):
        graph.upstream_edges = _walk(root, "up", depth)
    if direction in ("down", "both"):
        graph.downstream_edges = _walk(root, "down", depth)
    return graph
