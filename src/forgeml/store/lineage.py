"""Repository for lineage edges: "this produced / used / was derived from that".

Edges are generic (typed node ids on both ends) so every capability can record its
own links without a table of its own; writing the same edge twice is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, tuple_

from forgeml.store import schema
from forgeml.store.database import Database
from forgeml.store.records import LineageEdge

Node = tuple[str, str]  # (type, id)
_CHUNK = 300


class LineageRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_edges(self, edges: Iterable[LineageEdge]) -> None:
        rows = [
            {
                "src_type": e.src_type,
                "src_id": e.src_id,
                "dst_type": e.dst_type,
                "dst_id": e.dst_id,
                "relation": e.relation,
                "created_at": e.created_at or time.time(),
                "properties": e.properties,
            }
            for e in edges
        ]
        if not rows:
            return
        with self.db.write() as conn:
            self.db.upsert(
                conn,
                schema.lineage_edges,
                rows,
                ["src_type", "src_id", "dst_type", "dst_id", "relation"],
                [],
            )

    def edges_touching(self, nodes: Sequence[Node], direction: str) -> list[LineageEdge]:
        """Edges leaving (``"down"``) or entering (``"up"``) any of ``nodes``."""
        table = schema.lineage_edges
        if direction == "down":
            key: Any = tuple_(table.c.src_type, table.c.src_id)
        else:
            key = tuple_(table.c.dst_type, table.c.dst_id)
        found: list[LineageEdge] = []
        with self.db.read() as conn:
            for start in range(0, len(nodes), _CHUNK):
                chunk = list(nodes[start : start + _CHUNK])
                query = select(table).where(key.in_(chunk)).order_by(table.c.id)
                for r in conn.execute(query):
                    found.append(
                        LineageEdge(
                            r.src_type,
                            r.src_id,
                            r.dst_type,
                            r.dst_id,
                            r.relation,
                            r.created_at,
                            r.properties,
                        )
                    )
        return found
