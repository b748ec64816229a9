"""Text captures of every console view at 80x24 over run folders the real commands wrote, for
docs/console.md (a reader sees the console before installing it).

usage: python tests/tui/captures.py ARTIFACTS [docs/console.md]
(ARTIFACTS as `python tests/tui/real_runs.py ARTIFACTS` builds it)"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import FakeGpu, FakeHost  # noqa: E402
from real_runs import EVAL, LIVE_NOT_READY, PRETRAIN, TRAIN, TUNE  # noqa: E402

from ztb_tui.app import ZtbApp  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: (title, run to open or None for the runs list, keys pressed after, readonly)
VIEWS = [
    ("The runs list (⚠ marks a run going wrong; the line below says why)", None, ["down"] * 6, False),
    ("A finished training run: its verdict above its curves", TRAIN, [], False),
    ("A training run: checkpoints (v verifies, R resumes, d deletes)", TRAIN, ["2"], False),
    ("A chart filling the screen (tab to it, f; + and - zoom the steps axis)", TRAIN, ["tab", "f"], False),
    ("A pretraining run: every timeframe labelled, correlations beside the best naive filler", PRETRAIN, [], False),
    ("An evaluation run opens on its report", EVAL, [], False),
    ("The report, further down: bootstrap, Monte Carlo, costs, robustness", EVAL, ["pagedown"], False),
    ("A tuning study opens on its trials", TUNE, [], False),
    ("A live run whose policy never decides: the warning and what fixes it", LIVE_NOT_READY, [], False),
    (
        "Read-only: READONLY in the title, no launch or STOP keys (pressing one answers with a one-line notice)",
        None,
        [],
        True,
    ),
    ("Every key (?)", None, ["question_mark"], False),
]


async def capture(artifacts: Path, run: str | None, keys: list[str], readonly: bool) -> str:
    gpu = FakeGpu(available=False, reason="NVML: no NVIDIA driver on this machine")
    app = ZtbApp(artifacts, configs=CONFIGS, host=FakeHost(gpu), refresh_s=0.2, readonly=readonly)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(1.5)
        if run is not None:
            table = app.screen.query_one("#runs")
            table.move_cursor(row=table.get_row_index(run))
            table.focus()
            await pilot.press("enter")
            await pilot.pause(2.5)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.3)
        await pilot.pause(1.0)
        lines = ["".join(seg.text for seg in strip).rstrip() for strip in app.screen._compositor.render_strips()]
    return "\n".join(lines)


async def main(src: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # the console names its folder relative to where it runs: "artifacts", not a build path
        artifacts = Path(tmp) / "artifacts"
        shutil.copytree(src, artifacts, ignore=shutil.ignore_patterns("data", "cache", "*.sqlite*", "study.db"))
        os.chdir(tmp)
        # a fresh state home: the captures show the default sort, not this machine's remembered one
        os.environ["XDG_STATE_HOME"] = str(Path(tmp) / "state")
        parts = [
            "# The console at 80x24\n",
            "Text captures of `ztb tui` on an ordinary 80x24 SSH terminal, over runs made with the real "
            "commands (a short `ztb train`, `ztb eval` on it, a two-trial `ztb tune`, a few-step "
            "`ztb pretrain`, dry-run `ztb live` runs against the exchange emulator). Colours are lost in "
            "text; everything else is as on screen. Regenerate with "
            "`python tests/tui/real_runs.py DIR/artifacts && python tests/tui/captures.py DIR/artifacts docs/console.md`.\n",
        ]
        for title, run, keys, readonly in VIEWS:
            text = await capture(artifacts, run, keys, readonly)
            parts.append(f"## {title}\n\n```text\n{text}\n```\n")
    out.write_text("\n".join(parts))


if __name__ == "__main__":
    asyncio.run(
        main(Path(sys.argv[1]).resolve(), Path(sys.argv[2] if len(sys.argv) > 2 else "docs/console.md").resolve())
    )
