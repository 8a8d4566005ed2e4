"""``@fm.step`` and ``@fm.pipeline``: plain functions that become a graph of cached steps.

Calling a pipeline runs its body once with a graph builder active: each step call in it
records a node and returns a handle (:class:`Output`) instead of running. Handles passed
to later steps become the edges. The graph then runs on an executor, each step in a
worker process, each result stored by content. Outside a pipeline a step is just its
function: ``load(10)`` calls it directly, which keeps steps easy to test.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from forgeml.errors import InvalidArgumentError, PipelineError

if TYPE_CHECKING:
    from forgeml.pipelines.runner import PipelineRun

P = ParamSpec("P")
R = TypeVar("R")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_SIZES = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}
_SIZES |= {"g": 1024**3, "gb": 1024**3, "t": 1024**4, "tb": 1024**4}


@dataclass(frozen=True)
class Resources:
    """What one attempt of a step needs: CPUs, GPUs, memory in bytes."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None


def resources(cpus: float = 1.0, gpus: float = 0.0, memory: int | str | None = None) -> Resources:
    """``resources(cpus=2, gpus=1, memory="4GB")`` for ``@fm.step(resources=...)``."""
    if cpus <= 0 or gpus < 0:
        raise InvalidArgumentError(f"resources: cpus must be > 0 and gpus >= 0 ({cpus}, {gpus})")
    return Resources(float(cpus), float(gpus), _bytes(memory) if memory is not None else None)


def _bytes(value: int | str) -> int:
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", value)
    if match is None or match.group(2).lower() not in _SIZES:
        raise InvalidArgumentError(f"resources: memory {value!r} is not a size like '4GB'")
    return int(float(match.group(1)) * _SIZES[match.group(2).lower()])


class Step(Generic[P, R]):
    """A function run as one cached, retried unit of a pipeline."""

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 0,
        retry_backoff: float = 1.0,
        timeout: float | None = None,
        cache: bool = True,
        resources: Resources | None = None,
        outputs: Sequence[str] | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        where = f"step {self.name!r}"
        if not _NAME.match(self.name):
            raise InvalidArgumentError(f"{where}: a name is letters, digits, _ . - (<= 128)")
        if retries < 0 or retry_backoff < 0:
            raise InvalidArgumentError(f"{where}: retries and retry_backoff must be >= 0")
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError(f"{where}: timeout must be positive, in seconds")
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.timeout = timeout
        self.cache = cache
        self.resources = resources or Resources()
        self.outputs = tuple(outputs) if outputs is not None else None
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    @property
    def ref(self) -> str:
        """``module:qualname``, how a worker process finds this step."""
        return f"{self.function.__module__}:{self.function.__qualname__}"

    @functools.cached_property
    def code(self) -> str:
        try:
            return textwrap.dedent(inspect.getsource(self.function))
        except (OSError, TypeError):  # defined in a REPL: fall back to the bytecode
            code = self.function.__code__
            return f"<bytecode {code.co_code.hex()} {code.co_consts!r}>"

    @functools.cached_property
    def code_hash(self) -> str:
        """The function's source: editing the step invalidates its cached results."""
        return hashlib.sha256(self.code.encode()).hexdigest()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        builder = _builder.get()
        if builder is None:
            return self.function(*args, **kwargs)
        return cast(R, builder.add(self, args, kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        return _reference(self.function)

    def __repr__(self) -> str:
        return f"<step {self.name} ({self.ref})>"


LOADED_MAIN = "__forgeml_main__"  # a pipeline script loaded from its file to resume it


def _reference(function: Callable[..., Any]) -> tuple[Any, ...]:
    """Pickle a step or pipeline as where it lives: worker processes import it again."""
    module = function.__module__
    if "<locals>" in function.__qualname__:
        raise PipelineError(
            f"{function.__qualname__} is defined inside a function; define steps and "
            "pipelines at module level so that worker processes can import them"
        )
    path = None
    if module == LOADED_MAIN:
        path = getattr(sys.modules.get(module), "__file__", None)
    return (_import_step, (module, function.__qualname__, path))


def _import_step(module: str, qualname: str, path: str | None = None) -> Any:
    import importlib

    if module == LOADED_MAIN and module not in sys.modules and path is not None:
        target: Any = load_module_file(Path(path))
    else:
        target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def load_module_file(path: Path) -> Any:
    """A script loaded as a module that worker processes can load again by its path."""
    import importlib.util

    if not path.is_file():
        raise PipelineError(f"pipeline file {path} does not exist")
    existing = sys.modules.get(LOADED_MAIN)
    if existing is not None and getattr(existing, "__file__", None) == str(path.resolve()):
        return existing
    spec = importlib.util.spec_from_file_location(LOADED_MAIN, path.resolve())
    if spec is None or spec.loader is None:
        raise PipelineError(f"cannot load pipeline file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[LOADED_MAIN] = module
    spec.loader.exec_module(module)
    return module


@overload
def step(function: Callable[P, R]) -> Step[P, R]: ...


@overload
def step(
    function: None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    resources: Resources | None = None,
    outputs: Sequence[str] | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(
    function: Callable[P, R] | None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    resources: Resources | None = None,
    outputs: Sequence[str] | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Make a function a pipeline step.

    ``retries`` more attempts after a failure, waiting ``retry_backoff`` seconds, then
    twice that, and so on; ``timeout`` seconds per attempt, after which the worker
    process running it is killed; ``cache=False`` for steps with side effects;
    ``outputs=("train", "test")`` for a step returning a tuple whose parts later steps
    take separately.
    """

    def wrap(fn: Callable[P, R]) -> Step[P, R]:
        return Step(
            fn,
            name=name,
            retries=retries,
            retry_backoff=retry_backoff,
            timeout=timeout,
            cache=cache,
            resources=resources,
            outputs=outputs,
        )

    return wrap(function) if function is not None else wrap


# -- the graph -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """A step's result while the pipeline is being built: pass it to other steps."""

    node: str
    index: int | None = None  # which part of a step with several outputs
    label: str | None = None

    def __iter__(self) -> Iterator[Output]:
        raise PipelineError(
            f"step {self.node!r} has one output; declare @fm.step(outputs=(...)) "
            "to return several and unpack them"
        )

    def __bool__(self) -> bool:
        raise PipelineError(
            f"the result of step {self.node!r} is not known while the pipeline is built, "
            "so it cannot be tested with if/while; decide inside a step instead"
        )


@dataclass
class Node:
    name: str
    step: Step[Any, Any]
    arguments: dict[str, Any]  # parameter -> value, possibly holding Output handles
    upstream: list[str] = field(default_factory=list)


@dataclass
class Graph:
    pipeline: str
    nodes: dict[str, Node] = field(default_factory=dict)
    result: Any = None  # what the pipeline function returned (may hold Outputs)

    def downstream(self, name: str) -> list[str]:
        """Every node that reads ``name``'s outputs, directly or not."""
        found: list[str] = []
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for node in self.nodes.values():
                if current in node.upstream and node.name not in found:
                    found.append(node.name)
                    frontier.append(node.name)
        return found


class _Builder:
    def __init__(self, graph: Graph, prefix: str = "") -> None:
        self.graph = graph
        self.prefix = prefix

    def add(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineError(f"step {step.name!r} called with wrong arguments: {exc}") from exc
        bound.apply_defaults()
        name = self._unique(self.prefix + step.name)
        upstream: list[str] = []
        for value in bound.arguments.values():
            for handle in _handles(value):
                if handle.node not in upstream:
                    upstream.append(handle.node)
        self.graph.nodes[name] = Node(name, step, dict(bound.arguments), upstream)
        if step.outputs is None:
            return Output(name)
        return tuple(Output(name, i, label) for i, label in enumerate(step.outputs))

    def _unique(self, name: str) -> str:
        if name not in self.graph.nodes:
            return name
        number = 2
        while f"{name}_{number}" in self.graph.nodes:
            number += 1
        return f"{name}_{number}"


_builder: ContextVar[_Builder | None] = ContextVar("forgeml_pipeline_builder", default=None)


def _handles(value: Any) -> Iterator[Output]:
    """The Output handles inside an argument (lists, tuples and dicts are searched)."""
    if isinstance(value, Output):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _handles(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _handles(item)


class Pipeline(Generic[P]):
    """A function whose body wires steps together; calling it runs them."""

    def __init__(self, function: Callable[P, Any], name: str | None = None) -> None:
        self.function = function
        self.name = name or function.__name__
        if not _NAME.match(self.name):
            raise InvalidArgumentError(
                f"pipeline {self.name!r}: a name is letters, digits, _ . - (<= 128)"
            )
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    @property
    def ref(self) -> str:
        return f"{self.function.__module__}:{self.function.__qualname__}"

    def build(self, *args: P.args, **kwargs: P.kwargs) -> Graph:
        """The graph of steps for these parameters, without running anything."""
        graph = Graph(self.name)
        token = _builder.set(_Builder(graph))
        try:
            graph.result = self.function(*args, **kwargs)
        finally:
            _builder.reset(token)
        if not graph.nodes:
            raise PipelineError(f"pipeline {self.name!r} calls no steps")
        return graph

    def params(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults filled in."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentError(f"pipeline {self.name!r}: {exc}") from exc
        bound.apply_defaults()
        return dict(bound.arguments)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> PipelineRun:
        """Run the pipeline (inside another pipeline: add its steps to that one)."""
        outer = _builder.get()
        if outer is not None:  # a sub-pipeline: its steps join the outer graph
            token = _builder.set(_Builder(outer.graph, f"{outer.prefix}{self.name}."))
            try:
                return self.function(*args, **kwargs)  # type: ignore[no-any-return]
            finally:
                _builder.reset(token)
        return self.run(*args, **kwargs)

    def run(self, *args: P.args, **kwargs: P.kwargs) -> PipelineRun:
        """Run with the configured executor (``FORGEML_EXECUTOR``: local or ray)."""
        from forgeml.pipelines.runner import run_pipeline

        return run_pipeline(self, self.params(*args, **kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        return _reference(self.function)

    def __repr__(self) -> str:
        return f"<pipeline {self.name} ({self.ref})>"


@overload
def pipeline(function: Callable[P, Any]) -> Pipeline[P]: ...


@overload
def pipeline(
    function: None = None, *, name: str | None = None
) -> Callable[[Callable[P, Any]], Pipeline[P]]: ...


def pipeline(
    function: Callable[P, Any] | None = None, *, name: str | None = None
) -> Pipeline[P] | Callable[[Callable[P, Any]], Pipeline[P]]:
    """Make a function a pipeline: its body calls steps, and calling it runs them."""

    def wrap(fn: Callable[P, Any]) -> Pipeline[P]:
        return Pipeline(fn, name)

    return wrap(function) if function is not None else wrap
