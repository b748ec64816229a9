"""Logging: stdlib logging into the run's `logs/` plus rich output on the terminal."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.logging import RichHandler

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(
    run_dir: Path | None = None, level: int = logging.INFO, console: bool = True, filename: str = "run.log"
) -> logging.Logger:
    """Configure the `ztb` logger once per process: a file handler in `run_dir/logs/` and a rich
    console handler. Safe to call again (handlers are replaced, not duplicated)."""
    logger = logging.getLogger("ztb")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_ztb", False):
            logger.removeHandler(handler)
            handler.close()
    if run_dir is not None:
        log_dir = Path(run_dir) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_dir / filename, encoding="utf-8")
        fh.setFormatter(logging.Formatter(_FORMAT))
        fh._ztb = True  # type: ignore[attr-defined]
        logger.addHandler(fh)
    if console:
        ch = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        ch.setFormatter(logging.Formatter("%(message)s"))
        ch._ztb = True  # type: ignore[attr-defined]
        logger.addHandler(ch)
    return logger


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"ztb.{name}")
