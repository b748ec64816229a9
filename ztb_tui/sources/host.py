"""The machine the console runs on: CPU, memory, GPUs and the artifacts disk (its fill forecast)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ztb_core.errors import ZtbError

if TYPE_CHECKING:
    from ztb_core.runtime.config import DiskConfig
    from ztb_core.runtime.disk import DiskHealth

Clock = Callable[[], float]


@dataclass(frozen=True)
class HostSample:
    cpu_pct: float
    mem_pct: float
    mem_used_mb: float
    mem_total_mb: float
    gpu_available: bool
    gpu_reason: str
    gpus: tuple[Any, ...] = ()  # GpuSample
    disk: DiskHealth | None = None  # the artifacts filesystem


class CpuMeter:
    """Whole-machine CPU % since the previous call, from its own `cpu_times()` baseline.

    `psutil.cpu_percent(None)` keeps one baseline per process, shared with every other caller
    (the telemetry sampler, libraries), and its first call returns a meaningless 0.0; so the
    console read 0% on a saturated machine. Busy time is total minus idle and iowait, as psutil
    counts it."""

    def __init__(self, cpu_times: Callable[[], Any]):
        self._times = cpu_times
        self._last = cpu_times()  # the primed baseline: the first reading covers a real interval
        self._value = 0.0

    @staticmethod
    def _split(t: Any) -> tuple[float, float]:
        fields = t._asdict()
        # guest time is already counted in user/nice (Linux)
        total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
        idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
        return total, total - idle

    def __call__(self) -> float:
        now = self._times()
        total0, busy0 = self._split(self._last)
        total1, busy1 = self._split(now)
        if total1 - total0 > 0:
            self._value = max(0.0, min(100.0, 100.0 * (busy1 - busy0) / (total1 - total0)))
            self._last = now
        return self._value


class HostSource:
    """CPU, memory and GPUs of the machine the console runs on. Takes any `GpuSource`
    (NVML in production, a fake in tests); no GPU is a state to show, never an error."""

    def __init__(
        self,
        gpu: Any = None,
        mem: Callable[[], Any] | None = None,
        cpu: Callable[[], float] | None = None,
        disk_path: Path | None = None,
        now: Clock = time.time,
        disk_usage: Callable[[Path], Any] | None = None,
    ):
        import psutil

        self.disk_path = disk_path
        self.now = now
        self._disk_usage = disk_usage
        self._disk_config: DiskConfig | None = None
        self._disk_history: deque[tuple[float, int]] = deque(maxlen=4096)
        if gpu is None:
            from ztb_core.runtime.telemetry import NvmlSource

            gpu = NvmlSource()
        self.gpu = gpu
        self._mem = mem or psutil.virtual_memory
        self._cpu = cpu or CpuMeter(psutil.cpu_times)

    def _disk(self) -> DiskHealth | None:
        """Free space, growth and time to full of the artifacts filesystem (runtime.disk)."""
        if self.disk_path is None:
            return None
        # imported in the poller's thread: runtime.disk pulls in pydantic, kept off the first paint
        from ztb_core.runtime.config import load_ops_config
        from ztb_core.runtime.disk import disk_health

        now = self.now()
        try:
            if self._disk_config is None:  # the thresholds `ztb watch` alerts on (configs/ops.yaml)
                self._disk_config = load_ops_config().disk
            # the same reading `ztb watch` alerts on, over the free space this console has seen
            # (the fitted, smoothed rate of runtime.estimates)
            health = disk_health(self.disk_path, self._disk_history, self._disk_config, now=now, usage=self._disk_usage)
        except (OSError, ZtbError):
            return None
        self._disk_history.append((now, health.free_bytes))
        return health

    def poll(self) -> HostSample:
        vm = self._mem()
        try:
            gpus = tuple(self.gpu.gpus()) if self.gpu.available else ()
            available, reason = bool(self.gpu.available), str(self.gpu.reason)
        except Exception as exc:  # a driver hiccup must not take the console down
            gpus, available, reason = (), False, f"{exc.__class__.__name__}: {exc}"
        return HostSample(
            disk=self._disk(),
            cpu_pct=float(self._cpu()),
            mem_pct=float(vm.percent),
            mem_used_mb=(vm.total - vm.available) / 2**20,
            mem_total_mb=vm.total / 2**20,
            gpu_available=available,
            gpu_reason=reason,
            gpus=gpus,
        )
