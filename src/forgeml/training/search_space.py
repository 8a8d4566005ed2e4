"""Search-space dimensions for ``fm.tune``: ``Float``, ``Int`` and ``Choice``.

They are plain frozen dataclasses, checked when built, so a mistake in a space is
reported on the line that wrote it (naming the argument at fault), not trials later
inside a sampler. ``check_space`` checks the space as a whole and names the entry. A dimension
becomes an Optuna distribution only when a study runs, so describing a space does not
import Optuna.

    space = {
        "C": Float(1e-3, 1e2, log=True),
        "max_iter": Int(100, 500, step=100),
        "penalty": Choice(["l2", None]),
        "solver": "lbfgs",  # a constant: passed to every trial as is
    }
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from forgeml.errors import InvalidArgumentError

_PLAIN = (bool, int, float, str, type(None))


def _number(kind: str, field: str, value: Any, whole: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (not whole or float(value).is_integer())
    if not ok:
        wanted = "a whole number" if whole else "a finite number"
        raise InvalidArgumentError(
            f"the {field!r} parameter of {kind} must be {wanted}, got {value!r}"
        )


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``; ``log=True`` samples evenly across magnitudes."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _number("Float", "low", self.low, whole=False)
        _number("Float", "high", self.high, whole=False)
        if self.low > self.high:
            raise InvalidArgumentError(
                f"the 'low' parameter of Float ({self.low!r}) must not be greater than "
                f"'high' ({self.high!r})"
            )
        if self.log and self.low <= 0:
            raise InvalidArgumentError(
                f"the 'low' parameter of Float must be greater than 0 with log=True, "
                f"got {self.low!r}"
            )

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class Int:
    """A whole number in ``[low, high]`` on a grid of ``step``; ``log`` as for :class:`Float`."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        _number("Int", "low", self.low, whole=True)
        _number("Int", "high", self.high, whole=True)
        _number("Int", "step", self.step, whole=True)
        if self.low > self.high:
            raise InvalidArgumentError(
                f"the 'low' parameter of Int ({self.low!r}) must not be greater than "
                f"'high' ({self.high!r})"
            )
        if self.step < 1:
            raise InvalidArgumentError(
                f"the 'step' parameter of Int must be at least 1, got {self.step!r}"
            )
        if self.log and self.low < 1:
            raise InvalidArgumentError(
                f"the 'low' parameter of Int must be at least 1 with log=True, got {self.low!r}"
            )
        if self.log and self.step != 1:
            raise InvalidArgumentError(
                f"the 'step' parameter of Int must be 1 with log=True, got {self.step!r}"
            )

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step))


@dataclass(frozen=True)
class Choice:
    """One of a few options: numbers, strings, booleans or None (what a study can store)."""

    options: tuple[Any, ...]

    def __init__(self, options: Sequence[Any]) -> None:
        # A list is accepted for convenience and kept as a tuple, so the dataclass stays
        # hashable and frozen.
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
            raise InvalidArgumentError(
                f"the 'options' parameter of Choice must be a list or tuple, got {options!r}"
            )
        if not options:
            raise InvalidArgumentError("the 'options' parameter of Choice must not be empty")
        for option in options:
            if not isinstance(option, _PLAIN):
                raise InvalidArgumentError(
                    f"the 'options' parameter of Choice holds a {type(option).__name__} "
                    f"({option!r:.60}); options must be numbers, strings, booleans or None "
                    "(pick an object by name inside the objective)"
                )
        if len(set(map(repr, options))) != len(options):
            raise InvalidArgumentError(
                f"the 'options' parameter of Choice repeats a value: {list(options)!r}"
            )
        object.__setattr__(self, "options", tuple(options))

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.options)


Dimension = Float | Int | Choice


def check_space(space: Any) -> dict[str, Any]:
    """Validate a space (name -> dimension or constant) and return it as a plain dict.

    Every error names the entry, because a space may hold dozens of them. A list is
    refused rather than guessed at: ``Choice([...])`` says it is a choice.
    """
    if not isinstance(space, Mapping) or not space:
        raise InvalidArgumentError(
            f"space must be a non-empty dict of name -> Float/Int/Choice or constant, got {space!r}"
        )
    checked: dict[str, Any] = {}
    for name, entry in space.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(
                f"search space names must be non-empty strings, got {name!r}"
            )
        if isinstance(entry, (Float, Int, Choice)):
            pass  # checked when built
        elif not isinstance(entry, _PLAIN):
            raise InvalidArgumentError(
                f"search space entry {name!r}: {type(entry).__name__} {entry!r:.60} is neither "
                "Float, Int, Choice nor a constant (number, string, boolean or None)"
            )
        elif isinstance(entry, float) and not math.isfinite(entry):
            raise InvalidArgumentError(
                f"search space entry {name!r}: constant {entry!r} is not finite"
            )
        checked[name] = entry
    return checked


def distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """The Optuna distributions of the space's dimensions (constants are left out)."""
    return {
        name: entry.distribution()
        for name, entry in space.items()
        if isinstance(entry, (Float, Int, Choice))
    }


def describe(entry: Any) -> str:
    """One short line per entry, logged as a param of the study's run."""
    if isinstance(entry, Float):
        return f"Float({entry.low!r}, {entry.high!r}{', log' if entry.log else ''})"
    if isinstance(entry, Int):
        step = f", step={entry.step}" if entry.step != 1 else ""
        return f"Int({entry.low!r}, {entry.high!r}{step}{', log' if entry.log else ''})"
    if isinstance(entry, Choice):
        return f"Choice({list(entry.options)!r})"
    return repr(entry)
