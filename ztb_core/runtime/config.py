"""`OpsConfig`: disk-health thresholds, janitor retention, error digest and weekly report settings,
loaded from `configs/ops.yaml` (every key documented there)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..config import ZtbModel, load_config


class DiskConfig(ZtbModel):
    warn_free_mb: float = Field(2048.0, ge=0, description="warn when free space under the artifacts folder drops below")
    critical_free_mb: float = Field(256.0, ge=0, description="critical when free space drops below")
    warn_hours_to_full: float = Field(24.0, ge=0, description="warn when the growth rate fills the disk within")
    critical_hours_to_full: float = Field(1.0, ge=0, description="critical when the growth rate fills the disk within")
    growth_window_min: float = Field(30.0, gt=0, description="growth rate is measured over the samples this recent")


class RetentionRule(ZtbModel):
    max_age_days: float | None = Field(None, gt=0, description="remove items older than this (null = no age limit)")
    keep_last: int | None = Field(None, ge=0, description="keep at most this many newest items (null = no limit)")
    max_total_mb: float | None = Field(None, ge=0, description="remove oldest items until the total fits (null = off)")


class JanitorConfig(ZtbModel):
    runs: RetentionRule = Field(
        default_factory=lambda: RetentionRule(max_age_days=90.0, keep_last=200), description="whole run folders"
    )
    checkpoints: RetentionRule = Field(
        default_factory=lambda: RetentionRule(keep_last=3), description="checkpoint files inside each run"
    )
    launches: RetentionRule = Field(
        default_factory=lambda: RetentionRule(max_age_days=30.0), description="console launch logs"
    )
    logs: RetentionRule = Field(
        default_factory=lambda: RetentionRule(max_age_days=30.0, max_total_mb=512.0), description="run log files"
    )
    states: list[str] = Field(
        ["completed", "stopped", "failed"], description="only runs in these final states are removed whole"
    )


class OpsConfig(ZtbModel):
    default_file: ClassVar[str | None] = "ops.yaml"

    disk: DiskConfig = Field(default_factory=DiskConfig, description="disk health thresholds")
    janitor: JanitorConfig = Field(default_factory=JanitorConfig, description="retention rules")


def load_ops_config(overrides: list[str] | tuple[str, ...] = ()) -> OpsConfig:
    return load_config(OpsConfig, None, overrides)
