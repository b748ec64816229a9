"""`make test` is what CI runs (.ci/run): it must run every test, the slow ones included, and print
the 25 slowest so a test that grows slow shows in every CI log; `make test-fast` is the edit-run
loop that leaves the `slow` ones out."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def recipes(makefile: str) -> dict[str, list[str]]:
    """target -> its recipe lines (tab-indented lines under `target:`)."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in makefile.splitlines():
        if line.startswith("\t") and current is not None:
            out[current].append(line.strip())
            continue
        match = re.match(r"^([A-Za-z0-9_.-]+):(?!=)", line)
        current = match.group(1) if match else None
        if current is not None:
            out[current] = []
    return out


def pytest_args(recipe: list[str]) -> list[str]:
    """The arguments of the one pytest command in a recipe."""
    (line,) = [r for r in recipe if "-m pytest" in r]
    return shlex.split(line.split("-m pytest", 1)[1])


def selection_problems(args: list[str]) -> list[str]:
    """What in a pytest command line would leave tests out of the run."""
    problems = []
    for i, a in enumerate(args):
        if a in ("-m", "-k", "--deselect", "--ignore", "--lf", "--last-failed", "-x", "--exitfirst"):
            problems.append(a if a in ("--lf", "--last-failed", "-x", "--exitfirst") else f"{a} {args[i + 1]}")
        elif a.startswith(("-m=", "-k=", "--deselect=", "--ignore=", "--ignore-glob")) or (
            len(a) > 2 and a[:2] in ("-m", "-k") and not a.startswith("--")
        ):
            problems.append(a)
    return problems


def test_make_test_runs_every_test_and_prints_the_slowest():
    target = recipes((REPO / "Makefile").read_text())["test"]
    args = pytest_args(target)
    assert selection_problems(args) == [], "make test must run everything CI runs"
    assert "--durations=25" in args
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_make_test_fast_leaves_out_the_slow_tests():
    args = pytest_args(recipes((REPO / "Makefile").read_text())["test-fast"])
    assert args[args.index("-m") + 1] == "not slow"


def test_the_check_would_catch_a_filter_on_make_test():
    """Positive control: a `-m "not slow"` or a `-k` on the test target is caught."""
    for filtered in ('-m "not slow"', "-k live", "-m=gpu", "--deselect tests/x.py::t", "--ignore tests/live"):
        makefile = f"test: check\n\t$(PY) -m pytest -q -n auto {filtered} --durations=25\n"
        assert selection_problems(pytest_args(recipes(makefile)["test"])), filtered
    plain = "test: check\n\t$(PY) -m pytest -q -n $(PYTEST_WORKERS) --durations=25\n"
    assert selection_problems(pytest_args(recipes(plain)["test"])) == []


def stale_slow_entries(files: frozenset[str], tests: frozenset[str], root: Path) -> list[str]:
    """Entries of the slow lists that name no file or no test function any more."""
    stale = [f for f in files if not (root / f).is_file()]
    for entry in tests:
        rel, name = entry.split("::", 1)
        path = root / rel
        if not path.is_file() or not re.search(rf"^\s*(async )?def {re.escape(name)}\(", path.read_text(), re.M):
            stale.append(entry)
    return stale


def test_the_slow_lists_name_existing_tests():
    """A renamed test would silently join `make test-fast`: the lists must name real tests."""
    from ..conftest import SLOW_FILES, SLOW_TESTS

    root = REPO / "tests"
    assert SLOW_FILES and SLOW_TESTS
    assert stale_slow_entries(SLOW_FILES, SLOW_TESTS, root) == []
    # positive control: a gone file and a renamed test are reported
    gone = frozenset({"live/test_gone.py"})
    renamed = frozenset({"foundation/test_makefile_targets.py::test_renamed_away"})
    assert stale_slow_entries(gone, renamed, root) == ["live/test_gone.py", *renamed]
