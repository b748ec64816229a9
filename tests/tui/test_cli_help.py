"""`ztb <command> --help` on an ordinary 80-column SSH terminal: every option's name is printed
whole (no "--enable-streami…") and every description is there to read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer.main
from typer._click import core as click  # typer 0.2x carries its own click

from ztb_core.cli import app

REPO = Path(__file__).resolve().parents[2]


def commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command and sub-command of the CLI, with its path."""
    out: list[tuple[tuple[str, ...], click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        out.append(((*prefix, name), cmd))
        if hasattr(cmd, "list_commands"):
            out += commands(cmd, (*prefix, name))
    return out


ROOT = typer.main.get_command(app)
assert hasattr(ROOT, "list_commands")
ALL = commands(ROOT)


def render_help(path: tuple[str, ...], columns: int = 80) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color", "PYTHONPATH": str(REPO)}
    env.pop("NO_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ztb_core.cli", *path, "--help"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def long_names(cmd: click.Command) -> list[str]:
    return [
        o
        for p in cmd.params
        if p.param_type_name == "option" and not getattr(p, "hidden", False)
        for o in p.opts + p.secondary_opts
    ]


def check(text: str, cmd: click.Command, columns: int) -> list[str]:
    problems = []
    for line in text.splitlines():
        if len(line) > columns:
            problems.append(f"line wider than {columns}: {line!r}")
        if "…" in line:
            problems.append(f"cut: {line!r}")
    words = set(re.findall(r"(?<![\w-])-{1,2}[\w][\w-]*", text))
    for name in long_names(cmd):
        if name not in words:
            problems.append(f"option {name} not printed whole")
    return problems


def render_many(paths: list[tuple[str, ...]], columns: int = 80) -> dict[str, str]:
    """Each command's `--help` at COLUMNS=`columns`, rendered in one process (as a shell on an SSH
    terminal does); keyed by the command path joined with spaces."""
    script = (
        "import sys, click, typer.main\n"
        "from ztb_core.cli import app\n"
        "root = typer.main.get_command(app)\n"
        "for path in sys.argv[1:]:\n"
        "    args = path.split()\n"
        "    try:\n"
        "        root.main(args + ['--help'], prog_name='ztb', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    print('\\x00' + path)\n"
    )
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", script, *(" ".join(p) for p in paths)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    chunks = proc.stdout.split("\x00")
    texts: dict[str, str] = {}
    start = chunks[0]
    for chunk in chunks[1:]:
        path, _, rest = chunk.partition("\n")
        texts[path] = start
        start = rest
    return texts


def test_every_command_help_shows_whole_option_names_at_80_columns() -> None:
    """One process renders every command's help at COLUMNS=80 (as a shell on an SSH terminal does)."""
    texts = render_many([p for p, _ in ALL])
    problems = []
    for path, cmd in ALL:
        text = texts[" ".join(path)]
        assert "Usage:" in text, f"ztb {' '.join(path)} --help printed no usage"
        problems += [f"ztb {' '.join(path)}: {p}" for p in check(text, cmd, 80)]
    assert not problems, "\n".join(problems)
    assert len(ALL) >= 10  # every command was rendered, not an empty list


def set_metavar_problems(text: str) -> list[str]:
    """`--set` must read as what it takes (KEY=VALUE), not as the Python type typer prints."""
    lines = [ln for ln in text.splitlines() if re.search(r"(?<![\w-])--set(?![\w-])", ln)]
    shown = [ln for ln in lines if ln.lstrip().startswith("--set")]
    if not shown:
        return ["--set not listed"]
    return [f"--set reads {ln.strip()!r}" for ln in shown if "--set KEY=VALUE" not in ln or "list[" in ln]


def test_set_reads_key_value_in_every_commands_help() -> None:
    with_set = [p for p, cmd in ALL if "--set" in long_names(cmd)]
    assert len(with_set) >= 10  # train, eval, pretrain, tune, live, data ... all take --set
    texts = render_many(with_set)
    problems = [f"ztb {path}: {p}" for path, text in texts.items() for p in set_metavar_problems(text)]
    assert not problems, "\n".join(problems)
    # positive control: the line typer printed before
    assert set_metavar_problems("  --set <list[str]>               Override a config key")


def test_train_help_at_80_columns_names_the_streaming_flags() -> None:
    """The reported case, through the real entry point: the streaming flags read whole."""
    text = render_help(("train",))
    for name in ("--enable-streaming", "--stream-batch-size", "--stream-buffer-policy"):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), text
    assert "streaming.enabled" in text  # the description is there too, not cut


def test_the_check_catches_rich_panels_cutting_option_names() -> None:
    """Positive control: the same check fails on typer's rich panels (the layout `ztb` had)."""
    script = (
        "from ztb_core.cli import app\n"
        "import typer.main\n"
        "app.rich_markup_mode = 'rich'\n"
        "typer.main.get_command(app).main(['train', '--help'], prog_name='ztb', standalone_mode=False)\n"
    )
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "╭" in proc.stdout, proc.stdout + proc.stderr  # the rich layout was rendered
    assert check(proc.stdout, dict(ALL)[("train",)], 80)


def test_an_unknown_option_is_a_usage_error_not_a_traceback() -> None:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "ztb_core.cli", "runs", "--no-such"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "No such option: --no-such" in proc.stderr and "Traceback" not in proc.stderr
