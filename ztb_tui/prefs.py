"""What the console remembers between starts: the runs list's sort order and its compare marks.

Kept in the user's state directory (`$XDG_STATE_HOME/ztb/console.json`, by default
`~/.local/state/ztb/console.json`), one entry per artifacts folder, not in the artifacts folder:
that folder is the run-directory contract between the jobs and the console, into which the
console writes nothing but kill-files; it may be shared by several people (each sorts their own
way) or be readable only (a `--readonly` console watching someone else's runs). A read-only
console reads these preferences and never writes them.

A missing file is no preferences; an unreadable or malformed one is reported once and ignored
(the console must start whatever is in it), and the next change replaces it whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ztb_core.atomic import atomic_write_text

VERSION = 1


def state_file() -> Path:
    """The preferences file of this user (XDG base directory spec: $XDG_STATE_HOME)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ztb" / "console.json"


@dataclass(frozen=True)
class RunsListPrefs:
    sort_key: str = "created"
    sort_reverse: bool = True  # newest first
    marked: frozenset[str] = field(default_factory=frozenset)


class PrefsError(ValueError):
    """The preferences file cannot be used (its path and what is wrong, for a notice)."""


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": VERSION, "artifacts": {}}
    except (OSError, ValueError) as exc:
        raise PrefsError(f"{path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        raise PrefsError(f"{path}: expected an object with an 'artifacts' object")
    return data


def load(path: Path, artifacts: Path, sort_keys: tuple[str, ...]) -> RunsListPrefs:
    """The preferences saved for `artifacts`; defaults when there are none. Raises PrefsError."""
    entry = _read(path)["artifacts"].get(str(Path(artifacts).resolve()))
    if entry is None:
        return RunsListPrefs()
    if not isinstance(entry, dict):
        raise PrefsError(f"{path}: the entry of {artifacts} is not an object")
    key = entry.get("sort_key", "created")
    reverse = entry.get("sort_reverse", True)
    marked = entry.get("marked", [])
    if key not in sort_keys:
        raise PrefsError(f"{path}: sort_key {key!r} is not one of {', '.join(sort_keys)}")
    if not isinstance(reverse, bool):
        raise PrefsError(f"{path}: sort_reverse must be true or false, got {reverse!r}")
    if not isinstance(marked, list) or not all(isinstance(m, str) for m in marked):
        raise PrefsError(f"{path}: marked must be a list of run ids")
    return RunsListPrefs(key, reverse, frozenset(marked))


def save(path: Path, artifacts: Path, prefs: RunsListPrefs) -> None:
    """Replace this artifacts folder's entry, atomically; other folders' entries are kept (a
    malformed file is replaced whole)."""
    try:
        data = _read(path)
    except PrefsError:
        data = {"version": VERSION, "artifacts": {}}
    data["version"] = VERSION
    data["artifacts"][str(Path(artifacts).resolve())] = {
        "sort_key": prefs.sort_key,
        "sort_reverse": prefs.sort_reverse,
        "marked": sorted(prefs.marked),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # no fsync: losing the last sort change to a power cut costs nothing, and this runs on a keypress
    atomic_write_text(path, json.dumps(data, indent=1) + "\n", fsync=False)
