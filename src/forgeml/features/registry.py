"""Registering definitions and resolving feature references to registered versions.

``apply`` stores a definition as a new version only when its digest changed. A string
reference (``"weather:temp"``) resolves to the newest registered version; the
transform it needs comes from the object defined in this process when that object
matches the version, or else is imported again from where it was defined, and is
used only if its code still hashes to what was registered.
"""

from __future__ import annotations

import difflib
import importlib
import runpy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from forgeml import backend, config
from forgeml.errors import InvalidArgumentError, NotFoundError
from forgeml.features.definitions import (
    AnyView,
    Entity,
    FeatureView,
    OnDemandFeatureView,
    Transform,
    defined,
    digest_of,
)
from forgeml.store.records import FeatureViewVersionRecord


class TransformChangedError(InvalidArgumentError):
    """The code a registered version was made with is no longer what the module holds."""


@dataclass(frozen=True)
class ViewVersion:
    """A registered feature-view version, with its transform when it has one."""

    record: FeatureViewVersionRecord
    view: AnyView | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def definition(self) -> dict[str, Any]:
        return self.record.definition

    @property
    def features(self) -> list[str]:
        return list(self.definition["features"])

    @property
    def join_keys(self) -> list[str]:
        return list(self.definition.get("join_keys", []))

    @property
    def ttl_seconds(self) -> float | None:
        value = self.definition.get("ttl_seconds")
        return float(value) if value is not None else None

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def __lineage_node__(self) -> tuple[str, str]:
        return ("feature_view_version", self.ref)

    def transform(self) -> Transform | None:
        """The transform function, found and checked against the registered code hash."""
        spec = self.definition.get("transform")
        if not spec:
            return None
        if self.view is not None and self.view.transform_spec is not None:
            return self.view.transform_spec
        function = _load_function(spec, self.ref)
        found = Transform(function, spec["format"])
        if found.code_hash != spec["code_hash"]:
            raise TransformChangedError(
                f"feature view {self.ref}: the code of {spec['qualname']} changed since this "
                "version was applied; apply the definitions again (`forgeml features apply`)"
            )
        return found


def _load_function(spec: dict[str, Any], ref: str) -> Callable[..., Any]:
    module, qualname, file = spec.get("module"), spec["qualname"], spec.get("file")
    namespace: Any = None
    if module and module != "__main__" and not module.startswith("<"):
        try:
            namespace = importlib.import_module(module)
        except ImportError:
            namespace = None
    if namespace is None and file:
        try:
            namespace = runpy.run_path(file, run_name=f"forgeml_features_{abs(hash(file))}")
        except FileNotFoundError:
            namespace = None
    if namespace is None:
        raise NotFoundError(
            f"feature view {ref}: cannot find its transform {qualname} "
            f"(module {module!r}, file {file!r}); define the view in this process or make "
            "its module importable"
        )
    value: Any = namespace
    for part in qualname.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            raise NotFoundError(f"feature view {ref}: {qualname} is no longer defined in {file}")
    if not callable(value):
        raise NotFoundError(f"feature view {ref}: {qualname} is not a function")
    return value  # type: ignore[no-any-return]


def apply(objects: Iterable[Entity | AnyView] | Entity | AnyView) -> list[ViewVersion]:
    """Register entities and views; a view gets a new version only if its definition changed."""
    if isinstance(objects, Entity | FeatureView | OnDemandFeatureView):
        objects = [objects]
    repo = backend.features()
    versions: list[ViewVersion] = []
    for obj in objects:
        if isinstance(obj, Entity):
            repo.put_entity(obj.name, list(obj.join_keys), obj.description or None)
        elif isinstance(obj, FeatureView | OnDemandFeatureView):
            versions.append(register(obj))
        else:
            raise InvalidArgumentError(
                f"cannot apply {obj!r}: expected fm.Entity, fm.FeatureView or "
                "fm.OnDemandFeatureView"
            )
    return versions


_registered: dict[tuple[int, str, str], ViewVersion] = {}


def register(view: AnyView) -> ViewVersion:
    """The registered version of ``view``'s current definition (made if new)."""
    repo = backend.features()
    if isinstance(view, FeatureView):
        features = view.declared_features
        if features is None:
            from forgeml.features.offline import infer_features

            features = infer_features(view)
        definition = view.definition(features)
    else:
        definition = view.definition()
    digest = digest_of(definition)
    cache_key = (id(view), digest, config.settings().db_url)
    cached = _registered.get(cache_key)
    if cached is not None and cached.view is view:
        return cached  # every training frame registers its views: no writes when unchanged
    if isinstance(view, FeatureView):
        for entity in view.entities:
            repo.put_entity(entity.name, list(entity.join_keys), entity.description or None)
    transform = definition.get("transform")
    record, _created = repo.add_version(
        view.name,
        view.kind,
        digest,
        definition,
        transform["code_hash"] if transform else None,
        config.settings().user,
    )
    found = ViewVersion(record, view)
    _registered[cache_key] = found
    return found


def resolve(name: str, version: int | None = None) -> ViewVersion:
    """A registered version (the newest by default), paired with a matching local object."""
    record = backend.features().get_version(name, version)
    local = defined(name)
    if local is not None:
        try:
            local_digest = digest_of(
                local.definition(record.definition["features"])
                if isinstance(local, FeatureView)
                else local.definition()
            )
        except InvalidArgumentError:
            local_digest = ""
        if local_digest == record.digest:
            return ViewVersion(record, local)
    return ViewVersion(record, None)


def as_version(view: str | AnyView | ViewVersion) -> ViewVersion:
    if isinstance(view, ViewVersion):
        return view
    if isinstance(view, FeatureView | OnDemandFeatureView):
        return register(view)
    if isinstance(view, str):
        name, _, number = view.partition("/")
        return resolve(name, int(number) if number.isdigit() else None)
    raise InvalidArgumentError(f"not a feature view: {view!r}")


@dataclass(frozen=True)
class FeatureSelection:
    """Which features of which view versions a request asks for, in the order asked."""

    batch: list[tuple[ViewVersion, list[str]]]
    on_demand: list[tuple[ViewVersion, list[str]]]
    order: list[tuple[str, str]]  # (view, feature) as the caller listed them
    hidden: set[tuple[str, str]]  # batch features fetched only as on-demand inputs

    @property
    def versions(self) -> list[ViewVersion]:
        return [v for v, _ in self.batch] + [v for v, _ in self.on_demand]


def select_features(
    features: Sequence[str | AnyView | ViewVersion] | str | AnyView,
) -> FeatureSelection:
    """Parse ``["weather:temp", "weather:*", view_object, ...]`` into view versions."""
    if isinstance(features, str | FeatureView | OnDemandFeatureView):
        features = [features]
    if not features:
        raise InvalidArgumentError("no features requested")
    wanted: dict[str, list[str]] = {}
    versions: dict[str, ViewVersion] = {}
    order: list[tuple[str, str]] = []

    def want(version: ViewVersion, names: Sequence[str]) -> None:
        known = versions.setdefault(version.name, version)
        if known.version != version.version:
            raise InvalidArgumentError(
                f"feature view {version.name!r} is asked for at versions {known.version} and "
                f"{version.version} in one request"
            )
        bucket = wanted.setdefault(version.name, [])
        for name in names:
            if name not in version.features:
                raise NotFoundError(
                    f"feature view {version.ref} has no feature {name!r} "
                    f"(it has {', '.join(version.features)})"
                )
            if (version.name, name) not in order:
                order.append((version.name, name))
            if name not in bucket:
                bucket.append(name)

    for item in features:
        if isinstance(item, str) and ":" in item:
            view_name, _, feature = item.partition(":")
            version = as_version(view_name)
            want(version, version.features if feature == "*" else [feature])
        elif isinstance(item, str | FeatureView | OnDemandFeatureView | ViewVersion):
            version = as_version(item)
            want(version, version.features)
        else:
            raise InvalidArgumentError(
                f"feature reference {item!r}: expected 'view:feature', 'view:*' or a view"
            )
    hidden: set[tuple[str, str]] = set()
    for name in list(wanted):
        version = versions[name]
        if version.kind != "on_demand":
            continue
        for ref in version.definition["sources"]:
            view_name, _, feature = ref.partition(":")
            source = versions.get(view_name) or as_version(view_name)
            if source.kind == "on_demand":
                raise InvalidArgumentError(
                    f"on-demand view {name!r} reads {ref}: on-demand views cannot chain"
                )
            versions.setdefault(view_name, source)
            bucket = wanted.setdefault(view_name, [])
            if feature not in bucket:
                bucket.append(feature)
                if (view_name, feature) not in order:
                    hidden.add((view_name, feature))
    batch = [(versions[n], f) for n, f in wanted.items() if versions[n].kind != "on_demand"]
    on_demand = [(versions[n], f) for n, f in wanted.items() if versions[n].kind == "on_demand"]
    return FeatureSelection(batch, on_demand, order, hidden)


def diff(name: str, old: int | None = None, new: int | None = None) -> str:
    """A unified diff of two versions' definitions (default: the two newest)."""
    repo = backend.features()
    if old is None and new is None:
        versions = repo.list_versions(name)
        if len(versions) < 2:
            raise NotFoundError(f"feature view {name!r} has only one version: nothing to diff")
        newer, older = versions[0], versions[1]
    else:
        newer = repo.get_version(name, new)
        older = repo.get_version(name, old if old is not None else newer.version - 1)
    return "".join(
        difflib.unified_diff(
            render_definition(older.definition).splitlines(keepends=True),
            render_definition(newer.definition).splitlines(keepends=True),
            fromfile=f"{name} v{older.version}",
            tofile=f"{name} v{newer.version}",
        )
    )


def render_definition(definition: dict[str, Any]) -> str:
    """A readable text form: fields as JSON, then the transform's code as written."""
    body = {k: v for k, v in definition.items() if k != "transform"}
    text = orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    transform = definition.get("transform")
    if transform:
        text += (
            f"\n\ntransform {transform['qualname']} ({transform['format']}, "
            f"sha256 {transform['code_hash'][:12]}):\n{transform['code']}"
        )
    return text + "\n"
