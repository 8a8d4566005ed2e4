"""The run a trainer logs to: the caller's open run, or one it opens and closes itself.

Training inside ``with fm.start_run(...)`` adds to that run and leaves it open for the
caller to log more; training without one gets a run of its own that ends FINISHED, or
FAILED with the traceback when training raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forgeml.tracking.active_run import ActiveRun


@contextmanager
def run_scope(experiment: str | None, run_name: str | None) -> Iterator[ActiveRun]:
    """Yield the active run, or open one (``experiment``, ``run_name`` apply only then)."""
    from forgeml.tracking.fluent import active_run, start_run

    current = active_run()
    if current is not None:
        yield current
        return
    with start_run(experiment, run_name) as run:
        yield run
