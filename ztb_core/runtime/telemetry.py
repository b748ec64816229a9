"""Resource telemetry: process RSS/CPU (with children), system memory, and per-GPU utilisation,
VRAM, temperature, power and per-process VRAM through NVML; the thread adds the free space of the
run's filesystem (`disk_free_bytes`, `disk_total_bytes`) for disk health.

No GPU or no driver is a state, not an error: `NvmlSource.available` is False and `.reason`
says why; `sample()` then reports `gpu: "unavailable: <reason>"` and never raises.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from .disk import disk_fields


@dataclass
class GpuSample:
    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    temp_c: float | None
    power_w: float | None


class GpuSource(Protocol):
    available: bool
    reason: str
    driver_version: str | None

    def gpus(self) -> list[GpuSample]: ...

    def process_vram_mb(self, pids: set[int]) -> float | None: ...


class NvmlSource:
    """NVIDIA GPUs through nvidia-ml-py (`pynvml`). Initialised once; failures become `reason`."""

    def __init__(self) -> None:
        self.available = False
        self.reason = ""
        self.driver_version: str | None = None
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            # imported here so a missing nvidia-ml-py becomes `reason`, not an import error of the module
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            drv = pynvml.nvmlSystemGetDriverVersion()
            self.driver_version = drv.decode() if isinstance(drv, bytes) else str(drv)
            if count == 0:
                self.reason = "no NVIDIA GPU found by the driver"
            else:
                self.available = True
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            text = str(exc) or exc.__class__.__name__
            self.reason = f"NVML: {text} (no NVIDIA driver on this machine?)"

    def _q(self, fn, *args):
        try:
            return fn(*args)
        except Exception:
            return None

    def gpus(self) -> list[GpuSample]:
        if not self.available:
            return []
        n = self._nvml
        out = []
        for i, h in enumerate(self._handles):
            name = self._q(n.nvmlDeviceGetName, h)
            util = self._q(n.nvmlDeviceGetUtilizationRates, h)
            mem = self._q(n.nvmlDeviceGetMemoryInfo, h)
            temp = self._q(n.nvmlDeviceGetTemperature, h, getattr(n, "NVML_TEMPERATURE_GPU", 0))
            power = self._q(n.nvmlDeviceGetPowerUsage, h)
            out.append(
                GpuSample(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    util_pct=float(util.gpu) if util is not None else None,
                    mem_used_mb=mem.used / 2**20 if mem is not None else None,
                    mem_total_mb=mem.total / 2**20 if mem is not None else None,
                    temp_c=float(temp) if temp is not None else None,
                    power_w=power / 1000.0 if power is not None else None,
                )
            )
        return out

    def process_vram_mb(self, pids: set[int]) -> float | None:
        if not self.available:
            return None
        total = 0.0
        for h in self._handles:
            procs = self._q(self._nvml.nvmlDeviceGetComputeRunningProcesses, h) or []
            for p in procs:
                if p.pid in pids and getattr(p, "usedGpuMemory", None):
                    total += p.usedGpuMemory / 2**20
        return total


class TelemetrySampler:
    """One call to `sample()` returns a flat dict suited to a `sys` metrics row."""

    def __init__(self, pid: int | None = None, gpu: GpuSource | None = None):
        self.proc = psutil.Process(pid or os.getpid())
        self.gpu: GpuSource = gpu if gpu is not None else NvmlSource()
        self._cpu_primed: dict[int, psutil.Process] = {}

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        rss = 0
        cpu = 0.0
        pids: set[int] = set()
        alive: dict[int, psutil.Process] = {}
        for p in self._tree():
            try:
                rss += p.memory_info().rss
                # reuse Process objects so cpu_percent measures since the previous sample
                known = self._cpu_primed.get(p.pid, p)
                cpu += known.cpu_percent(None)
                alive[p.pid] = known
                pids.add(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self._cpu_primed = alive
        vm = psutil.virtual_memory()
        out.update(
            rss_mb=rss / 2**20,
            cpu_pct=cpu,
            n_procs=len(pids),
            sys_mem_pct=vm.percent,
            sys_mem_used_mb=(vm.total - vm.available) / 2**20,
            sys_mem_total_mb=vm.total / 2**20,
        )
        try:
            gpus = self.gpu.gpus()
            if not self.gpu.available:
                out["gpu"] = f"unavailable: {self.gpu.reason}"
            else:
                out["gpu"] = "ok"
                for g in gpus:
                    p = f"gpu{g.index}_"
                    out.update(
                        {
                            p + "util_pct": g.util_pct,
                            p + "mem_used_mb": g.mem_used_mb,
                            p + "mem_total_mb": g.mem_total_mb,
                            p + "temp_c": g.temp_c,
                            p + "power_w": g.power_w,
                        }
                    )
                out["proc_vram_mb"] = self.gpu.process_vram_mb(pids)
        except Exception as exc:  # telemetry must never take a run down
            out["gpu"] = f"unavailable: {exc.__class__.__name__}: {exc}"
        return out


class TelemetryThread:
    """Samples every `interval_s` on a daemon thread into the run's metrics as split `sys`."""

    def __init__(self, writer, interval_s: float = 5.0, sampler: TelemetrySampler | None = None, step_fn=None):
        self.writer = writer
        self.interval_s = interval_s
        self.sampler = sampler or TelemetrySampler()
        self.step_fn = step_fn or (lambda: writer.status.get("step", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self.last: dict[str, Any] = {}

    def start(self) -> TelemetryThread:
        self.sampler.sample()  # prime cpu_percent
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sample = self.sampler.sample()
                run_dir = getattr(self.writer, "dir", None)
                if run_dir is not None:
                    # free space of the run's filesystem: the history `ztb watch` computes growth from
                    sample.update(disk_fields(run_dir))
                self.last = sample
                self.writer.metric(int(self.step_fn() or 0), "sys", self.last)
            except Exception:
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self.interval_s + 1)

    def __enter__(self) -> TelemetryThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def gpu_status_line(gpu: GpuSource | None = None) -> str:
    gpu = gpu or NvmlSource()
    if not gpu.available:
        return f"GPU: unavailable — {gpu.reason}"
    parts = [f"{g.index}:{g.name} {g.mem_used_mb or 0:.0f}/{g.mem_total_mb or 0:.0f} MiB" for g in gpu.gpus()]
    return f"GPU: driver {gpu.driver_version}; " + "; ".join(parts)


def gpu_facts() -> list[str] | str:
    """The GPUs for run.json: their names, or "unavailable: <reason>" (never raises)."""
    try:
        nvml = NvmlSource()
        return [g.name for g in nvml.gpus()] if nvml.available else f"unavailable: {nvml.reason}"
    except Exception as exc:  # facts are best effort; a run must not fail for them
        return f"unavailable: {exc.__class__.__name__}"
