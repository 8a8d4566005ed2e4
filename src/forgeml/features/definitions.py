"""Feature definitions in plain Python: entities, feature views, on-demand features.

A definition is data plus, optionally, one transform function. Its *digest* covers
everything that changes the values it produces (source, keys, timestamp, TTL and the
transform's code hash), so applying an edited definition makes a new version and
applying an unchanged one does not.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from forgeml.errors import InvalidArgumentError
from forgeml.registry.uri import check_model_name

TRANSFORM_FORMATS = ("pandas", "arrow", "polars")

# The newest object defined in this process under each view name: strings such as
# "weather:temp" resolve to it when its digest is the version asked for, so a script
# that defines its views can refer to them by name.
_defined: dict[str, FeatureView | OnDemandFeatureView] = {}
_defined_lock = threading.Lock()


@dataclass(frozen=True)
class Entity:
    """What features describe (an airport, a customer), and the columns that identify it."""

    name: str
    join_keys: tuple[str, ...] = ()
    description: str = ""

    def __init__(
        self, name: str, join_keys: Sequence[str] | None = None, description: str = ""
    ) -> None:
        check_model_name(name)
        keys = tuple(join_keys) if join_keys else (name,)
        if isinstance(join_keys, str):
            keys = (join_keys,)
        for key in keys:
            if not isinstance(key, str) or not key:
                raise InvalidArgumentError(f"entity {name!r}: join keys must be column names")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "description", description)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "join_keys": list(self.join_keys)}


@dataclass(frozen=True)
class Transform:
    """A user function and how to find it again in another process."""

    function: Callable[..., Any]
    format: str

    @property
    def code(self) -> str:
        try:
            return textwrap.dedent(inspect.getsource(self.function))
        except (OSError, TypeError):  # defined in a REPL: fall back to the bytecode
            code = self.function.__code__
            return f"<bytecode {code.co_code.hex()} {code.co_consts!r}>"

    @property
    def code_hash(self) -> str:
        return hashlib.sha256(self.code.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        function = self.function
        source_file = inspect.getsourcefile(function) if inspect.isfunction(function) else None
        return {
            "module": getattr(function, "__module__", None),
            "qualname": getattr(function, "__qualname__", repr(function)),
            "file": str(Path(source_file).resolve()) if source_file else None,
            "format": self.format,
            "code_hash": self.code_hash,
            "code": self.code,
        }


def _transform(function: Callable[..., Any] | None, fmt: str, where: str) -> Transform | None:
    if function is None:
        return None
    if not callable(function):
        raise InvalidArgumentError(f"{where}: transform must be a function, not {function!r}")
    if fmt not in TRANSFORM_FORMATS:
        raise InvalidArgumentError(
            f"{where}: transform_format {fmt!r} is not one of {', '.join(TRANSFORM_FORMATS)}"
        )
    return Transform(function, fmt)


def describe_source(source: Any) -> dict[str, Any]:
    """A JSON description of where a view's rows come from."""
    from forgeml.data.dataset import Dataset
    from forgeml.data.sources import SQL

    if isinstance(source, Dataset):
        return {"kind": "dataset", "name": source.name, "version": source.version}
    if isinstance(source, SQL):
        return {"kind": "sql", "query": source.query, "url": source.url}
    if isinstance(source, str) and source.startswith("datasets:/"):
        parts = source.removeprefix("datasets:/").strip("/").split("/")
        if len(parts) == 1 and parts[0]:
            return {"kind": "dataset", "name": parts[0], "version": None}
        if len(parts) == 2 and parts[1].isdigit():
            return {"kind": "dataset", "name": parts[0], "version": int(parts[1])}
        raise InvalidArgumentError(
            f"source {source!r}: expected datasets:/NAME or datasets:/NAME/VERSION"
        )
    if isinstance(source, str | Path):
        text = str(source)
        if "://" not in text:
            text = str(Path(text).expanduser().resolve())
        return {"kind": "parquet", "path": text}
    if isinstance(source, Mapping) and source.get("kind") in ("dataset", "sql", "parquet"):
        return dict(source)
    raise InvalidArgumentError(
        f"unsupported feature source {source!r}: give a Dataset, 'datasets:/NAME', a Parquet "
        "path (file, glob or directory) or fm.data.SQL(query, url)"
    )


def _seconds(ttl: timedelta | float | int | None, where: str) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if seconds <= 0:
        raise InvalidArgumentError(f"{where}: ttl must be positive, not {ttl!r}")
    return seconds


def _digest(definition: Mapping[str, Any]) -> str:
    hashed = {k: v for k, v in definition.items() if k not in ("description", "tags")}
    transform = hashed.get("transform")
    if transform:  # where the code lives does not change what it computes
        hashed["transform"] = {"format": transform["format"], "code_hash": transform["code_hash"]}
    return hashlib.sha256(orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(eq=False)
class FeatureView:
    """Features of one or more entities, read from a source, valid for ``ttl`` after their time.

    ``transform`` takes a batch of source rows (a pandas DataFrame unless
    ``transform_format`` says ``"arrow"`` or ``"polars"``) and returns the same rows
    with the features computed; it must keep the join keys and the timestamp. The same
    function builds training frames and the values materialized for serving.
    """

    name: str
    entities: Sequence[Entity]
    source: Any
    timestamp_field: str
    features: Sequence[str] | None = None
    transform: Callable[..., Any] | None = None
    ttl: timedelta | float | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    transform_format: str = "pandas"

    def __post_init__(self) -> None:
        check_model_name(self.name)
        where = f"feature view {self.name!r}"
        if not self.entities:
            raise InvalidArgumentError(f"{where}: needs at least one entity")
        for entity in self.entities:
            if not isinstance(entity, Entity):
                raise InvalidArgumentError(f"{where}: {entity!r} is not an fm.Entity")
        if not self.timestamp_field:
            raise InvalidArgumentError(f"{where}: timestamp_field is required")
        self._source = describe_source(self.source)
        self._transform = _transform(self.transform, self.transform_format, where)
        self._ttl_seconds = _seconds(self.ttl, where)
        features = list(self.features) if self.features is not None else None
        if features is not None:
            if not features:
                raise InvalidArgumentError(f"{where}: features is empty")
            reserved = set(self.join_keys) | {self.timestamp_field}
            for name in features:
                if not isinstance(name, str) or not name:
                    raise InvalidArgumentError(f"{where}: feature names must be strings")
                if name in reserved:
                    raise InvalidArgumentError(
                        f"{where}: {name!r} is a join key or the timestamp, not a feature"
                    )
            if len(set(features)) != len(features):
                raise InvalidArgumentError(f"{where}: a feature name appears twice")
        self._features = features
        with _defined_lock:
            _defined[self.name] = self

    kind = "batch"

    @property
    def join_keys(self) -> list[str]:
        keys: list[str] = []
        for entity in self.entities:
            keys.extend(k for k in entity.join_keys if k not in keys)
        return keys

    @property
    def ttl_seconds(self) -> float | None:
        return self._ttl_seconds

    @property
    def transform_spec(self) -> Transform | None:
        return self._transform

    def definition(self, features: Sequence[str] | None = None) -> dict[str, Any]:
        """The registered form; ``features`` fills in names inferred from the source."""
        names = list(features) if features is not None else self._features
        if names is None:
            raise InvalidArgumentError(
                f"feature view {self.name!r}: feature names are not known yet (apply it first)"
            )
        return {
            "kind": self.kind,
            "name": self.name,
            "entities": [e.to_dict() for e in self.entities],
            "join_keys": self.join_keys,
            "source": self._source,
            "timestamp_field": self.timestamp_field,
            "features": names,
            "ttl_seconds": self._ttl_seconds,
            "transform": self._transform.to_dict() if self._transform else None,
            "description": self.description,
            "tags": dict(self.tags),
        }

    @property
    def declared_features(self) -> list[str] | None:
        return self._features

    def __repr__(self) -> str:
        return f"<FeatureView {self.name} keys={self.join_keys} features={self._features}>"


@dataclass(eq=False)
class OnDemandFeatureView:
    """Features computed at request time from request fields and other views' features.

    ``transform`` receives one frame with the ``request_fields`` and the ``sources``
    features as columns (named by feature) and returns a frame of ``features``. It
    runs on the whole training frame offline and on each request online.
    """

    name: str
    features: Sequence[str]
    transform: Callable[..., Any]
    sources: Sequence[str | FeatureView] = ()
    request_fields: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    transform_format: str = "pandas"

    kind = "on_demand"

    def __post_init__(self) -> None:
        check_model_name(self.name)
        where = f"on-demand feature view {self.name!r}"
        if not self.features:
            raise InvalidArgumentError(f"{where}: features is empty")
        spec = _transform(self.transform, self.transform_format, where)
        assert spec is not None
        if not self.sources and not self.request_fields:
            raise InvalidArgumentError(f"{where}: needs request_fields or source features")
        self._transform = spec
        refs: list[str] = []
        for source in self.sources:
            if isinstance(source, FeatureView):
                if source.declared_features is None:
                    raise InvalidArgumentError(
                        f"{where}: list the features of {source.name!r} to use it as a source"
                    )
                refs.extend(f"{source.name}:{f}" for f in source.declared_features)
            elif isinstance(source, str) and source.count(":") == 1:
                refs.append(source)
            else:
                raise InvalidArgumentError(
                    f"{where}: source {source!r} is not a FeatureView or 'view:feature'"
                )
        self._refs = refs
        with _defined_lock:
            _defined[self.name] = self

    @property
    def source_refs(self) -> list[str]:
        return list(self._refs)

    @property
    def transform_spec(self) -> Transform:
        return self._transform

    def definition(self, features: Sequence[str] | None = None) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "sources": self.source_refs,
            "request_fields": dict(self.request_fields),
            "features": list(features if features is not None else self.features),
            "transform": self._transform.to_dict(),
            "description": self.description,
            "tags": dict(self.tags),
        }

    @property
    def declared_features(self) -> list[str]:
        return list(self.features)

    def __repr__(self) -> str:
        return f"<OnDemandFeatureView {self.name} features={list(self.features)}>"


AnyView = FeatureView | OnDemandFeatureView


def digest_of(definition: Mapping[str, Any]) -> str:
    return _digest(definition)


def defined(name: str) -> AnyView | None:
    """The view object of that name defined in this process, if any."""
    with _defined_lock:
        return _defined.get(name)
