"""Resources: the run's own telemetry (split `sys`) and the console host's GPUs."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.widgets import Static

from ..fmt import duration, num, size
from ..sources import HostSample, MetricsSnapshot
from . import set_text, set_wrapping_text
from .metrics import MetricPanel

_GPU_KEY = re.compile(r"^sys/gpu(\d+)_(util_pct|mem_used_mb|temp_c|power_w)$")
_GPU_LABEL = {
    "util_pct": ("util", "%"),
    "mem_used_mb": ("VRAM", " MiB"),
    "temp_c": ("temp", "°C"),
    "power_w": ("power", " W"),
}
_PROC = [
    ("sys/cpu_pct", "CPU (+kids)", "%"),
    ("sys/rss_mb", "RSS (+kids)", " MiB"),
    ("sys/sys_mem_pct", "system mem", "%"),
    ("sys/proc_vram_mb", "run VRAM", " MiB"),
]


def gpu_line(snapshot: MetricsSnapshot) -> str:
    state = snapshot.text.get("sys/gpu")
    if state is None:
        return "GPU: no telemetry from this run yet"
    if state.startswith("unavailable"):
        reason = state.split(":", 1)[1].strip() if ":" in state else state
        return f"[yellow]GPU: unavailable — {reason}[/]"
    return "GPU: ok"


class ResourcesPanel(MetricPanel):
    """Per-GPU utilisation, VRAM used/total, temperature, power, the run's VRAM; process RSS and
    CPU including children; system memory — each with its history."""

    def __init__(self, **kwargs):
        super().__init__("resources", "no `sys` telemetry in this run's metrics yet", **kwargs)
        self.gpu_text = "GPU: no telemetry from this run yet"

    def host_changed(self, sample: HostSample | None) -> None:
        self._show_gpu_line()

    def _show_gpu_line(self) -> None:
        # the one place the run view says why there is no GPU: the host line below shows an icon
        set_text(self.query_one("#gpu-line", Static), self.gpu_text)

    def compose(self) -> ComposeResult:
        yield Static("GPU: no telemetry from this run yet", id="gpu-line")
        yield from super().compose()

    def on_mount(self) -> None:
        self.host_changed(getattr(self.app, "host_sample", None))

    def update_from(self, snapshot: MetricsSnapshot) -> None:
        specs: list[tuple[str, str]] = []
        units: dict[str, str] = {}
        totals: dict[str, float] = {}
        for key, label, unit in _PROC:
            if key in snapshot.series:
                specs.append((key, label))
                units[key] = unit
        for key in sorted(snapshot.series):
            m = _GPU_KEY.match(key)
            if m:
                label, unit = _GPU_LABEL[m.group(2)]
                specs.append((key, f"gpu{m.group(1)} {label}"))
                units[key] = unit
                if m.group(2) == "mem_used_mb":
                    total = snapshot.series.get(f"sys/gpu{m.group(1)}_mem_total_mb")
                    if total is not None:
                        totals[key] = total.last
        self.ensure_rows(specs, units)
        self.gpu_text = gpu_line(snapshot)
        self._show_gpu_line()
        for key, row in self.rows.items():
            row.show(snapshot.series.get(key), totals.get(key))


def host_text(sample: HostSample | None) -> str:
    if sample is None:
        return "host: sampling…"
    parts = [
        f"host CPU {sample.cpu_pct:.0f}%",
        f"mem {sample.mem_pct:.0f}% ({sample.mem_used_mb / 1024:.1f}/{sample.mem_total_mb / 1024:.1f} GiB)",
    ]
    disk = sample.disk
    if disk is not None:
        colour = {"ok": "", "warn": "yellow", "critical": "bold red"}.get(disk.level, "")
        text = f"disk {size(disk.free_bytes)} free"
        # the time-to-full of a roomy disk swings with every burst of writes: said only once the
        # free space is below a threshold (configs/ops.yaml), where it matters
        if disk.seconds_to_full is not None and disk.level != "ok":
            text += f", full in {duration(disk.seconds_to_full)}"
        if disk.level != "ok":
            text = f"{disk.level.upper()}: {text}"
        parts.append(f"[{colour}]{text}[/]" if colour else text)
    if not sample.gpu_available:
        # the reason once (the app says it when it first learns it; the run view's resources
        # panel keeps it): on every screen's footer it took three lines at 80 columns
        parts.append("[yellow]GPU ✗[/]")
    else:
        for g in sample.gpus:
            mem = (
                f"{num(g.mem_used_mb / 1024 if g.mem_used_mb is not None else None)}/"
                f"{num(g.mem_total_mb / 1024 if g.mem_total_mb is not None else None)} GiB"
            )
            temp = f" {g.temp_c:.0f}°C" if g.temp_c is not None else ""
            power = f" {g.power_w:.0f} W" if g.power_w is not None else ""
            util = f"{g.util_pct:.0f}%" if g.util_pct is not None else "-"
            parts.append(f"GPU{g.index} {g.name} {util} {mem}{temp}{power}")
    return " · ".join(parts)


class HostBar(Static):
    """One line about the machine the console runs on, fed by the app's host poller."""

    DEFAULT_CSS = "HostBar { height: auto; max-height: 3; color: $text-muted; padding: 0 1; }"

    def on_mount(self) -> None:
        self.show(getattr(self.app, "host_sample", None))

    def show(self, sample: HostSample | None) -> None:
        set_wrapping_text(self, host_text(sample))
