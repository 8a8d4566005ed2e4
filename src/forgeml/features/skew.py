"""Training/serving skew: recompute served features offline and compare them.

For a sample of entities (given, recently served, or drawn from the online store),
the online values are read back and the same features are computed by the offline
path at the time the online store was materialized up to. Any difference means the
two paths disagree: a stale materialization, a source that changed underneath, or a
transform whose behaviour changed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import InvalidArgumentError
from forgeml.features.definitions import FeatureView
from forgeml.features.registry import ViewVersion, as_version


@dataclass
class SkewReport:
    view: str
    version: int
    as_of: dt.datetime
    checked: int
    mismatched_entities: int
    mismatches_by_feature: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatched_entities == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "version": self.version,
            "as_of": self.as_of.isoformat(),
            "checked": self.checked,
            "mismatched_entities": self.mismatched_entities,
            "mismatches_by_feature": self.mismatches_by_feature,
            "examples": self.examples,
        }

    def __str__(self) -> str:
        head = (
            f"{self.view} v{self.version}: {self.checked} entities checked at "
            f"{self.as_of.isoformat()}, {self.mismatched_entities} differ"
        )
        lines = [head]
        for feature, count in sorted(self.mismatches_by_feature.items()):
            lines.append(f"  {feature}: {count} mismatches")
        return "\n".join(lines)


def check_skew(
    view: str | FeatureView | ViewVersion,
    *,
    entities: Mapping[str, Sequence[Any]] | None = None,
    sample: int = 200,
    online_store: str | None = None,
    tolerance: float = 1e-9,
    max_examples: int = 20,
) -> SkewReport:
    """Compare the online store's values of ``view`` with the offline computation."""
    import pyarrow as pa

    from forgeml.features.lookup import FeatureClient, default_client
    from forgeml.features.offline import training_frame
    from forgeml.features.online_store import open_store

    version = as_version(view)
    store = open_store(online_store)
    client = FeatureClient(store, cache=False)
    meta = client.view_meta(version.name)
    if meta.version != version.version:
        raise InvalidArgumentError(
            f"the online store holds {version.name} v{meta.version}, not v{version.version}: "
            "materialize it first"
        )
    if entities is not None:
        columns = {k: list(v) for k, v in entities.items()}
    else:
        served = list(dict.fromkeys(default_client(online_store).served.get(version.name, [])))
        keys = served[-sample:] if served else store.sample_keys(version.name, sample)
        decoded = [meta.codec.decode(k) for k in keys]
        columns = {name: [d[i] for d in decoded] for i, name in enumerate(meta.codec.names)}
    as_of = dt.datetime.fromtimestamp(meta.end, dt.UTC).replace(tzinfo=None)
    refs = [f"{version.name}:{f}" for f in version.features]
    try:
        online = client.get(columns, refs, as_of=meta.end)
    finally:
        client.close()
    count = len(next(iter(columns.values()), []))
    time_column = "skew_check_time"
    entity_table = pa.table({**columns, time_column: pa.array([as_of] * count, pa.timestamp("us"))})
    offline = training_frame(entity_table, [version], timestamp_field=time_column)
    report = SkewReport(version.name, version.version, as_of, count, 0)
    for row in range(count):
        differs = False
        for feature in version.features:
            served_value = online[feature][row]
            offline_value = offline.column(feature)[row].as_py()
            if _same(served_value, offline_value, tolerance):
                continue
            differs = True
            report.mismatches_by_feature[feature] = report.mismatches_by_feature.get(feature, 0) + 1
            if len(report.examples) < max_examples:
                report.examples.append(
                    {
                        "entity": {k: columns[k][row] for k in meta.codec.names},
                        "feature": feature,
                        "online": served_value,
                        "offline": offline_value,
                    }
                )
        report.mismatched_entities += differs
    return report


def _same(online: Any, offline: Any, tolerance: float) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(online, float) or isinstance(offline, float):
        try:
            a, b = float(online), float(offline)
        except (TypeError, ValueError):
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
    return bool(online == offline)
