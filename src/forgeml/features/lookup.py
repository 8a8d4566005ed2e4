"""Online lookups: entity keys in, the latest feature values out, through the cache.

A lookup needs only the online store: what each view's payload holds (feature names,
key types, TTL, which version was materialized) is stored there next to the values,
so a serving process keeps answering while the metadata database is away. On-demand
features are computed by the view's own function on the looked-up values.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from forgeml.errors import InvalidArgumentError, NotFoundError
from forgeml.features.cache import FeatureCache
from forgeml.features.online_store import (
    META_KEY,
    Change,
    Entry,
    KeyCodec,
    OnlineStore,
    meta_name,
    open_store,
)

_SERVED_SAMPLE = 1000
_clients: weakref.WeakSet[FeatureClient] = weakref.WeakSet()
_clients_lock = threading.Lock()


def announce(store_url: str, changes: list[Change]) -> None:
    """Tell this process's clients of a store about changes at once, not after pub/sub."""
    with _clients_lock:
        clients = [c for c in _clients if c.store.url == store_url]
    for client in clients:
        client._on_changes(changes)


@dataclass(frozen=True)
class _ViewMeta:
    name: str
    version: int
    features: list[str]
    index: dict[str, int]
    codec: KeyCodec
    ttl_seconds: float | None
    end: float
    converters: dict[str, Callable[[Any], Any]]  # feature -> JSON value to Python value


def _converter(duck_type: str) -> Callable[[Any], Any] | None:
    """Times and dates travel as ISO text; they come back as the objects training saw."""
    upper = duck_type.upper()
    if upper.startswith("TIMESTAMP"):
        return lambda value: None if value is None else dt.datetime.fromisoformat(value)
    if upper == "DATE":
        return lambda value: None if value is None else dt.date.fromisoformat(value)
    return None


def _make_meta(view: str, raw: dict[str, Any]) -> _ViewMeta:
    features = list(raw["features"])
    converters: dict[str, Callable[[Any], Any]] = {}
    for name, duck_type in (raw.get("types") or {}).items():
        found = _converter(duck_type)
        if found is not None:
            converters[name] = found
    return _ViewMeta(
        name=view,
        version=int(raw["version"]),
        features=features,
        index={name: i + 1 for i, name in enumerate(features)},
        codec=KeyCodec(tuple(raw["join_keys"]), tuple(raw["key_kinds"])),
        ttl_seconds=raw.get("ttl_seconds"),
        end=float(raw.get("end") or 0.0),
        converters=converters,
    )


@dataclass(frozen=True)
class _Plan:
    batch: list[tuple[str, list[str]]]  # view, features to fetch
    on_demand: list[tuple[Any, list[str]]]  # ViewVersion, features
    columns: list[tuple[str, str, str]]  # (view, feature, output name), in request order
    hidden: set[tuple[str, str]]


class FeatureClient:
    """Looks features up in one online store, with an optional in-process cache."""

    def __init__(
        self,
        store: OnlineStore | str | None = None,
        *,
        cache: bool | FeatureCache = True,
        cache_ttl_seconds: float = 60.0,
        cache_entries: int = 100_000,
    ) -> None:
        self.store = (
            store if store is not None and not isinstance(store, str) else open_store(store)
        )
        if cache is True:
            self.cache: FeatureCache | None = FeatureCache(cache_entries, cache_ttl_seconds)
        else:
            self.cache = cache or None
        self._meta: dict[str, _ViewMeta] = {}
        self._version_meta: dict[tuple[str, int], _ViewMeta | None] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._lock = threading.Lock()
        self.served: dict[str, deque[str]] = {}
        self.lookups = 0
        self.rows = 0
        self._subscription = self.store.subscribe(self._on_changes)
        self._poll = self._subscription.poll
        with _clients_lock:
            _clients.add(self)

    def close(self) -> None:
        """Stop hearing the store's changes (a pub/sub thread on Redis)."""
        self._subscription.close()
        with _clients_lock:
            _clients.discard(self)

    # -- change notifications ---------------------------------------------------------
    def _on_changes(self, changes: list[Change] | None) -> None:
        if changes is None:
            with self._lock:
                self._meta.clear()
                self._plans.clear()
            if self.cache is not None:
                self.cache.invalidate(None)
            return
        metas = {view for view, key, _ in changes if key == META_KEY}
        if metas:
            with self._lock:
                for view in metas:
                    self._meta.pop(view, None)
                self._plans.clear()
        if self.cache is not None:
            self.cache.invalidate([c for c in changes if c[1] != META_KEY])

    # -- metadata ---------------------------------------------------------------------
    def view_meta(self, view: str) -> _ViewMeta:
        meta = self._meta.get(view)
        if meta is not None:
            return meta
        raw = self.store.get_meta(view)
        if raw is None:
            raise NotFoundError(
                f"feature view {view!r} has not been materialized into the online store "
                f"{_display(self.store.url)} (run `forgeml features materialize {view}`)"
            )
        meta = _make_meta(view, raw)
        with self._lock:
            self._meta[view] = meta
        return meta

    def version_meta(self, view: str, version: int) -> _ViewMeta | None:
        """The metadata of one version of a view (immutable, so kept for good)."""
        key = (view, version)
        if key in self._version_meta:
            return self._version_meta[key]
        raw = self.store.get_meta(meta_name(view, version))
        meta = _make_meta(view, raw) if raw is not None else None
        with self._lock:
            self._version_meta[key] = meta
        return meta

    def _plan(self, features: Sequence[Any], full_names: bool) -> _Plan:
        key = (tuple(f if isinstance(f, str) else id(f) for f in features), full_names)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        plan = self._make_plan(features, full_names)
        with self._lock:
            self._plans[key] = plan
        return plan

    def _make_plan(self, features: Sequence[Any], full_names: bool) -> _Plan:
        from forgeml.features.definitions import FeatureView, OnDemandFeatureView
        from forgeml.features.registry import as_version

        wanted: dict[str, list[str]] = {}
        on_demand: dict[str, tuple[Any, list[str]]] = {}
        order: list[tuple[str, str]] = []
        for item in features:
            if isinstance(item, FeatureView):
                view, names = item.name, list(self.view_meta(item.name).features)
            elif isinstance(item, OnDemandFeatureView):
                view, names = item.name, list(item.features)
            elif isinstance(item, str):
                view, _, feature = item.partition(":")
                names = [feature] if feature and feature != "*" else []
            else:
                raise InvalidArgumentError(
                    f"feature reference {item!r}: expected 'view:feature', 'view:*' or a view"
                )
            try:
                meta: _ViewMeta | None = self.view_meta(view)
                not_materialized: NotFoundError | None = None
            except NotFoundError as exc:
                meta, not_materialized = None, exc
            if meta is None:  # not materialized: only on-demand views are computed here
                version = as_version(item if not isinstance(item, str) else view)
                if version.kind != "on_demand":
                    assert not_materialized is not None
                    raise not_materialized
                names = names or version.features
                on_demand.setdefault(view, (version, []))
                for name in names:
                    if name not in version.features:
                        raise NotFoundError(f"on-demand view {version.ref} has no feature {name!r}")
                    if name not in on_demand[view][1]:
                        on_demand[view][1].append(name)
                    order.append((view, name))
                continue
            names = names or list(meta.features)
            for name in names:
                if name not in meta.index:
                    raise NotFoundError(
                        f"feature view {view!r} (version {meta.version} online) has no feature "
                        f"{name!r} (it has {', '.join(meta.features)})"
                    )
                bucket = wanted.setdefault(view, [])
                if name not in bucket:
                    bucket.append(name)
                if (view, name) not in order:
                    order.append((view, name))
        hidden: set[tuple[str, str]] = set()
        for version, _names in on_demand.values():
            for ref in version.definition["sources"]:
                view, _, feature = ref.partition(":")
                bucket = wanted.setdefault(view, [])
                if feature not in bucket:
                    bucket.append(feature)
                if (view, feature) not in order:
                    hidden.add((view, feature))
        columns: list[tuple[str, str, str]] = []
        taken: set[str] = set()
        for view, name in [*order, *sorted(hidden)]:
            output = f"{view}__{name}" if full_names else name
            if output in taken:
                raise InvalidArgumentError(
                    f"feature {view}:{name} would be column {output!r} twice; "
                    "pass full_names=True to name columns view__feature"
                )
            taken.add(output)
            columns.append((view, name, output))
        return _Plan(list(wanted.items()), list(on_demand.values()), columns, hidden)

    # -- lookups ----------------------------------------------------------------------
    def get(
        self,
        entities: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
        features: Sequence[Any] | str,
        *,
        request: Mapping[str, Sequence[Any]] | None = None,
        full_names: bool = False,
        as_of: dt.datetime | float | None = None,
    ) -> dict[str, list[Any]]:
        """Columns: the entity (and request) columns given, then each feature asked for.

        A value older than its view's TTL at ``as_of`` (now, by default) reads as null.
        """
        self._poll()
        if isinstance(features, str):
            features = [features]
        columns, rows = _columns(entities, request)
        plan = self._plan(features, full_names)
        now = _epoch(as_of)
        values: dict[tuple[str, str], list[Any]] = {}
        for view, names in plan.batch:
            meta = self.view_meta(view)
            key_columns = []
            for key in meta.codec.names:
                if key not in columns:
                    raise InvalidArgumentError(
                        f"feature view {view!r} is keyed by {key!r}, which the request lacks "
                        f"(it gave {', '.join(columns)})"
                    )
                key_columns.append(columns[key])
            keys = [meta.codec.encode(parts) for parts in zip(*key_columns, strict=True)]
            entries = self._entries(view, keys)
            served = self.served.setdefault(view, deque(maxlen=_SERVED_SAMPLE))
            served.extend(keys[:10])
            fetched: list[list[Any]] = [[] for _ in names]
            for entry in entries:
                row = self._decode(entry, meta, names, now)
                for slot, value in enumerate(row):
                    fetched[slot].append(value)
            for name, column in zip(names, fetched, strict=True):
                converter = meta.converters.get(name)
                values[(view, name)] = [converter(v) for v in column] if converter else column
        if plan.on_demand:
            self._on_demand(plan, columns, values, rows)
        output: dict[str, list[Any]] = {name: list(column) for name, column in columns.items()}
        for view, name, out in plan.columns:
            if (view, name) not in plan.hidden:
                output[out] = values[(view, name)]
        self.lookups += 1
        self.rows += rows
        return output

    def _decode(
        self, entry: Entry | None, meta: _ViewMeta, names: list[str], now: float
    ) -> list[Any]:
        """The values of ``names`` in one stored entry, null when absent or past its TTL.

        While a new version of a view is being materialized, entries it has written are
        read with its own metadata. Once it is the current version, entries left by an
        older version (entities it no longer has) read as null: another definition
        computed them.
        """
        if entry is None:
            return [None] * len(names)
        _version, ts, payload = entry
        decoded: list[Any] = orjson.loads(payload)
        if decoded[0] == meta.version:
            written_by: _ViewMeta | None = meta
        elif decoded[0] > meta.version:
            written_by = self.version_meta(meta.name, decoded[0])
        else:
            written_by = None
        if written_by is None:
            return [None] * len(names)
        if written_by.ttl_seconds is not None and now - ts > written_by.ttl_seconds:
            return [None] * len(names)
        index = written_by.index
        return [decoded[index[name]] if name in index else None for name in names]

    def _entries(self, view: str, keys: list[str]) -> list[Entry | None]:
        if self.cache is None:
            return self.store.read(view, keys)
        cached = self.cache.get_many(view, keys)
        missing = [key for key, (hit, _) in zip(keys, cached, strict=True) if not hit]
        if not missing:
            return [entry for _, entry in cached]
        fetched = self.store.read(view, missing)
        self.cache.put_many(view, missing, fetched)
        by_key = dict(zip(missing, fetched, strict=True))
        return [
            entry if hit else by_key[key] for key, (hit, entry) in zip(keys, cached, strict=True)
        ]

    def _on_demand(
        self,
        plan: _Plan,
        columns: dict[str, list[Any]],
        values: dict[tuple[str, str], list[Any]],
        rows: int,
    ) -> None:
        import pyarrow as pa

        from forgeml.features.on_demand import compute_on_demand

        data: dict[str, Any] = dict(columns)
        names: dict[tuple[str, str], str] = {}
        for (view, name), column in values.items():
            names[(view, name)] = f"__fm_{view}__{name}"
            data[names[(view, name)]] = column
        table = pa.table(data) if data else pa.table({"__fm_rows": [None] * rows})
        for version, wanted in plan.on_demand:
            computed = compute_on_demand(version, table, names, where="online lookup")
            for name in wanted:
                values[(version.name, name)] = computed.column(name).to_pylist()

    def stats(self) -> dict[str, Any]:
        cache = self.cache.stats() if self.cache is not None else None
        return {
            "lookups": self.lookups,
            "rows": self.rows,
            "cache": None
            if cache is None
            else {
                "hits": cache.hits,
                "misses": cache.misses,
                "hit_rate": cache.hit_rate,
                "invalidations": cache.invalidations,
                "evictions": cache.evictions,
                "size": cache.size,
            },
        }


def _epoch(value: dt.datetime | float | None) -> float:
    if value is None:
        return time.time()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return float(value)


def _columns(
    entities: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    request: Mapping[str, Sequence[Any]] | None,
) -> tuple[dict[str, list[Any]], int]:
    if isinstance(entities, Mapping):
        columns = {str(k): _as_list(v) for k, v in entities.items()}
    else:
        rows = list(entities)
        names: list[str] = []
        for row in rows:
            names.extend(k for k in row if k not in names)
        columns = {name: [row.get(name) for row in rows] for name in names}
    for name, column in (request or {}).items():
        if name in columns:
            raise InvalidArgumentError(f"request field {name!r} is also an entity column")
        columns[name] = _as_list(column)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidArgumentError(
            "entity and request columns differ in length: "
            + ", ".join(f"{k}={len(v)}" for k, v in columns.items())
        )
    if not columns:
        raise InvalidArgumentError("no entity keys given")
    return columns, lengths.pop()


def _as_list(value: Any) -> list[Any]:
    """A column of values; a single value (a string, a number) is a column of one."""
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    if hasattr(value, "tolist"):  # numpy arrays and pandas series
        return list(value.tolist())
    return list(value)


def _display(url: str) -> str:
    if "@" in url:  # hide a password in redis://user:password@host
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


_default: dict[tuple[str, bool], FeatureClient] = {}
_default_lock = threading.Lock()


def default_client(url: str | None = None, cache: bool = True) -> FeatureClient:
    from forgeml import config

    key = (url or config.settings().online_url, cache)
    with _default_lock:
        client = _default.get(key)
        if client is None:
            client = FeatureClient(key[0], cache=cache)
            _default[key] = client
        return client


def reset_default_client() -> None:
    with _default_lock:
        _default.clear()


def online(
    entities: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    features: Sequence[Any] | str,
    *,
    request: Mapping[str, Sequence[Any]] | None = None,
    cache: bool = True,
    full_names: bool = False,
    as_of: dt.datetime | float | None = None,
) -> dict[str, list[Any]]:
    """The latest feature values for these entities, from the configured online store.

    ``entities`` is ``{"origin": ["JFK", "LGA"]}`` or ``[{"origin": "JFK"}, ...]``;
    ``request`` gives the fields on-demand features are computed from. TTLs are
    judged at ``as_of`` (a naive datetime is UTC), now by default.
    """
    return default_client(cache=cache).get(
        entities, features, request=request, full_names=full_names, as_of=as_of
    )
