"""Writing a report: JSON validated against the bundled schema, Markdown, and PNG pictures.
Every file is written to a temporary name and renamed, and nothing is written at all when the
report does not validate, so a reader never sees a half-written or invalid report."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

import jsonschema
import numpy as np

from .errors import EvaluationError
from .markdown import report_markdown

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "eval_report.schema.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def to_jsonable(obj, path: str = "report"):
    """Plain JSON types; a NaN or infinity anywhere is a bug we refuse to write (named by key)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), path)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not math.isfinite(x):
            raise EvaluationError(f"{path} is {x}; a report never contains NaN or infinity")
        return x
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def validate_report(report: dict) -> dict:
    """The report as plain JSON, checked against the schema; errors name the offending key."""
    data = to_jsonable(report)
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}" for e in errors[:10]]
        raise EvaluationError("evaluation report does not match eval_report.schema.json:\n  " + "\n  ".join(lines))
    return data


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_report(report: dict, reports_dir: str | Path, eval_id: str, plots: bool | None = None) -> dict[str, Path]:
    """Write `eval_<id>.json`, `eval_<id>.md` and (unless disabled in the report's config or by
    `plots=False`) four PNGs into `reports_dir`. Returns {"json", "markdown", <picture>: path}.
    The JSON is written last, so its presence means the whole report is there."""
    if not _ID_RE.match(eval_id):
        raise EvaluationError(f"eval_id {eval_id!r}: use letters, digits, '_', '-' or '.' (at most 128)")
    data = validate_report(report)
    out_dir = Path(reports_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"{out_dir}: cannot create the reports folder ({exc.strerror})") from None
    if plots is None:
        plots = bool(data["meta"].get("config", {}).get("report", {}).get("plots", True))
    paths: dict[str, Path] = {}
    images: dict[str, str] = {}
    if plots:
        # matplotlib loads only when pictures are drawn: data.synthetic and every data command import
        # this package
        from .plots import PLOTS

        for key, draw in PLOTS.items():
            p = out_dir / f"eval_{eval_id}_{key}.png"
            draw(data, p)
            paths[key] = p
            images[key] = p.name
    md = out_dir / f"eval_{eval_id}.md"
    _atomic_write_text(md, report_markdown(data, images))
    paths["markdown"] = md
    js = out_dir / f"eval_{eval_id}.json"
    _atomic_write_text(js, json.dumps({**data, "eval_id": eval_id}, indent=1, allow_nan=False) + "\n")
    paths["json"] = js
    return paths
