"""Resource use of a run: wall time, CPU utilisation, peak memory, GPU use when present.

CPU time is exact (process times at start and end). Peak RSS is exact on Linux when the
run is the only one open in its process: the kernel's high-water mark is reset at the
start (``/proc/self/clear_refs``) and read at the end; otherwise, and as a floor, a
background thread samples RSS. GPUs are sampled through NVML when it is installed and
finds a device; without one, GPU fields are simply absent.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import psutil


@cache
def _nvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    return pynvml


def gpu_inventory() -> list[dict[str, Any]]:
    nvml = _nvml()
    if nvml is None:
        return []
    devices = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        devices.append(
            {
                "index": index,
                "name": name.decode() if isinstance(name, bytes) else str(name),
                "memory_total_bytes": int(memory.total),
            }
        )
    return devices


def _gpu_sample() -> list[tuple[float, int]]:
    """(utilisation %, memory used bytes) per GPU."""
    nvml = _nvml()
    if nvml is None:
        return []
    samples = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        samples.append((float(rates.gpu), int(memory.used)))
    return samples


def _cpu_seconds() -> float:
    """CPU of this process (nanosecond clock) plus its reaped children (microseconds).

    ``os.times`` counts in clock ticks (10 ms), which on a run of a few milliseconds
    turned into utilisation above what the cores can give.
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _read_hwm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


@dataclass
class Usage:
    """Accumulates one run's samples between :meth:`ResourceMonitor.start` and ``stop``."""

    wall_start: float
    cpu_start: float
    exact_peak: bool
    peak_rss: int = 0
    gpu_util: list[list[float]] = field(default_factory=list)
    gpu_peak_memory: list[int] = field(default_factory=list)

    def add(self, rss: int, gpus: list[tuple[float, int]]) -> None:
        self.peak_rss = max(self.peak_rss, rss)
        for index, (util, used) in enumerate(gpus):
            if index >= len(self.gpu_util):
                self.gpu_util.append([])
                self.gpu_peak_memory.append(0)
            self.gpu_util[index].append(util)
            self.gpu_peak_memory[index] = max(self.gpu_peak_memory[index], used)

    def summary(self, wall_end: float, cpu_end: float, high_water: int | None) -> dict[str, Any]:
        """What goes in the run's ``system`` column."""
        wall = max(wall_end - self.wall_start, 1e-9)
        cpu = cpu_end - self.cpu_start
        # A child reaped during the run brings all its CPU, some spent before the run
        # began; utilisation past what the cores can give is that, not work.
        cores = os.cpu_count() or 1
        result: dict[str, Any] = {
            "wall_time_s": round(wall, 6),
            "cpu_time_s": round(cpu, 6),
            "cpu_percent": round(min(100.0 * cpu / wall, 100.0 * cores), 2),
            "cpu_count": cores,
            "peak_rss_bytes": max(self.peak_rss, high_water or 0),
            "peak_rss_exact": self.exact_peak,
        }
        if self.gpu_util:
            result["gpus"] = [
                {
                    "index": index,
                    "utilization_mean_percent": round(sum(values) / len(values), 2),
                    "memory_peak_bytes": self.gpu_peak_memory[index],
                }
                for index, values in enumerate(self.gpu_util)
            ]
        return result


class ResourceMonitor:
    """One sampling thread per process, shared by every open run, started on demand."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._process = psutil.Process()
        self._runs: dict[str, Usage] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, run_id: str) -> None:
        with self._lock:
            alone = not self._runs
            exact = alone and _reset_hwm()
            usage = Usage(time.time(), _cpu_seconds(), exact)
            usage.add(self._process.memory_info().rss, [])
            self._runs[run_id] = usage
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="forgeml-resources", daemon=True
                )
                self._thread.start()

    def stop(self, run_id: str) -> dict[str, Any]:
        """Finish a run's measurement and return what goes in its ``system`` column."""
        rss = self._process.memory_info().rss
        gpus = _gpu_sample()
        with self._lock:
            usage = self._runs.pop(run_id, None)
        if usage is None:
            return {}
        usage.add(rss, gpus)
        high_water = _read_hwm_bytes() if usage.exact_peak else None
        return usage.summary(time.time(), _cpu_seconds(), high_water)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                rss = self._process.memory_info().rss
                gpus = _gpu_sample()
                with self._lock:
                    if not self._runs:
                        self._thread = None
                        return
                    for usage in self._runs.values():
                        usage.add(rss, gpus)

    def shutdown(self) -> None:
        self._stop.set()
