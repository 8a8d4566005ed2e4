"""Steps and pipelines the pipeline tests run (worker processes import them from here).

Steps record what they do in files under a ``marks`` directory, so a test can tell
whether a step really ran in this run, when, and how often.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

import forgeml as fm

log = logging.getLogger("pipeline_steps")


def mark(marks: str, name: str, text: str = "") -> None:
    with (Path(marks) / name).open("a") as handle:
        handle.write(f"{text or time.time()}\n")


def marked(marks: str | Path, name: str) -> list[str]:
    path = Path(marks) / name
    return path.read_text().splitlines() if path.exists() else []


@fm.step
def load(marks: str, n: int) -> pd.DataFrame:
    mark(marks, "load")
    return pd.DataFrame({"x": range(n), "y": [v * 2.0 for v in range(n)]})


@fm.step
def double(marks: str, frame: pd.DataFrame) -> pd.DataFrame:
    mark(marks, "double")
    return frame.assign(y=frame["y"] * 2)


@fm.step
def summarize(marks: str, frame: pd.DataFrame) -> dict[str, float]:
    mark(marks, "summarize")
    return {"rows": float(len(frame)), "total": float(frame["y"].sum())}


@fm.step(cache=False)
def report(marks: str, summary: dict[str, float]) -> str:
    mark(marks, "report")
    return f"{summary['rows']:.0f} rows"


@fm.pipeline
def tables(marks: str, n: int = 5) -> Any:
    frame = load(marks, n)
    summary = summarize(marks, double(marks, frame))
    return {"summary": summary, "report": report(marks, summary)}


@fm.step(outputs=("train", "test"))
def split(frame: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = int(len(frame) * share)
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


@fm.step
def count_all(parts: list[pd.DataFrame], label: str) -> dict[str, Any]:
    return {"label": label, "counts": [len(p) for p in parts]}


@fm.pipeline
def prepare(marks: str, n: int) -> Any:
    train, test = split(load(marks, n), 0.8)
    return train, test


@fm.pipeline
def outer(marks: str) -> Any:
    train, test = prepare(marks, 10)
    return count_all([train, test], label="sizes")


@fm.step(retries=2, retry_backoff=0.2)
def flaky(marks: str, failures: int) -> int:
    """Fails ``failures`` times, then returns how many attempts it took."""
    attempts = len(marked(marks, "flaky")) + 1
    mark(marks, "flaky")
    print(f"attempt {attempts}", flush=True)
    if attempts <= failures:
        raise RuntimeError(f"failing on purpose, attempt {attempts}")
    return attempts


@fm.pipeline
def retrying(marks: str, failures: int) -> Any:
    return flaky(marks, failures)


@fm.step(timeout=3.0)
def sleepy(marks: str, seconds: float) -> float:
    mark(marks, "sleepy", f"{os.getpid()}")
    time.sleep(seconds)
    return seconds


@fm.pipeline
def sleeping(marks: str, seconds: float) -> Any:
    return sleepy(marks, seconds)


@fm.step
def window(marks: str, name: str, seconds: float) -> str:
    """Records when it ran: tests compare the windows of steps that may overlap."""
    start = time.time()
    time.sleep(seconds)
    mark(marks, f"window-{name}", f"{start} {time.time()}")
    return name


@fm.pipeline
def parallel(marks: str) -> Any:
    return [window(marks, "a", 1.5), window(marks, "b", 1.5)]


@fm.step
def gate(marks: str, value: int) -> int:
    """Fails while the file ``marks/broken`` exists: a fault a test can repair."""
    mark(marks, "gate")
    if (Path(marks) / "broken").exists():
        raise ValueError("the gate is broken")
    return value + 1


@fm.step
def side(marks: str) -> str:
    mark(marks, "side")
    return "side"


@fm.step
def join(marks: str, gated: int, other: str) -> str:
    mark(marks, "join")
    return f"{gated}-{other}"


@fm.pipeline
def branches(marks: str) -> Any:
    first = load(marks, 3)
    gated = gate(marks, 41)
    other = side(marks)
    return {"joined": join(marks, gated, other), "first": summarize(marks, first)}


@fm.step
def chatty(marks: str) -> int:
    print("to stdout via print")
    os.write(2, b"straight to file descriptor 2\n")
    print("to stderr via sys.stderr", file=sys.stderr)
    log.info("structured line", extra={"rows": 5})
    return 1


@fm.pipeline
def talking(marks: str) -> Any:
    return chatty(marks)


@fm.step
def wait_for_kill(marks: str, summary: dict[str, float]) -> float:
    mark(marks, "waiting", str(os.getpid()))
    if not (Path(marks) / "go").exists():
        time.sleep(120)
    return summary["rows"] * 3


@fm.pipeline
def crashable(marks: str) -> Any:
    frame = load(marks, 4)
    return wait_for_kill(marks, summarize(marks, frame))


@fm.step
def increment(value: int) -> int:
    return value + 1


@fm.pipeline
def chain(length: int, start: int = 0) -> Any:
    value: Any = start
    for _ in range(length):
        value = increment(value)
    return value


@fm.step
def tracked(frame: pd.DataFrame) -> str:
    """Opens a run of its own, as a trainer would."""
    with fm.start_run(experiment="pipeline-tests") as run:
        fm.log_metric("rows", float(len(frame)))
    return run.id


@fm.pipeline
def training(marks: str) -> Any:
    return tracked(load(marks, 7))


@fm.step(resources=fm.resources(gpus=1))
def on_gpu(marks: str, name: str, seconds: float) -> dict[str, Any]:
    """Records the devices it was given, its process and when it ran."""
    start = time.time()
    time.sleep(seconds)
    mark(marks, f"gpu-{name}", f"{start} {time.time()}")
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


@fm.pipeline
def gpu_pair(marks: str) -> Any:
    return [on_gpu(marks, "a", 1.0), on_gpu(marks, "b", 1.0)]


@fm.step
def rendezvous(marks: str, name: str, other: str) -> bool:
    """Waits (up to 30 s) for ``other`` to be running too: True if they met."""
    mark(marks, f"running-{name}")
    deadline = time.time() + 30
    while time.time() < deadline:
        if marked(marks, f"running-{other}"):
            time.sleep(0.2)  # let the other one see this one too
            return True
        time.sleep(0.05)
    return False


@fm.pipeline
def meeting(marks: str) -> Any:
    return [rendezvous(marks, "a", "b"), rendezvous(marks, "b", "a")]
