"""The project's test registry: it validates, bad rows are named, the deflation behaves, and the
figures docs/results.md prints from it stay in step with it."""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from ztb_core.evaluation import probabilistic_sharpe_ratio
from ztb_core.evaluation.holdout_registry import (
    COLUMNS,
    RegistryError,
    append_scoring,
    deflate,
    load_registry,
    markets,
)

from ..conftest import FAST_EVAL as SHARED_FAST_EVAL
from ..conftest import copy_run

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "benchmarks" / "test_registry.csv"
SCRIPT = ROOT / "benchmarks" / "headline_dsr.py"
RESULTS = ROOT / "docs" / "results.md"
PPY = 374_400.0

HEADER = ",".join(COLUMNS)
GOOD = [
    "2026-12-01,synthetic:m:seed0,test,ridge,,,12.0,2.05,89300,M1,fx,docs/x.md § s,",
    "2026-12-01,synthetic:m:seed0,test,agent,final,0,11.0,2.05,89300,M1,fx,docs/x.md § s,",
    "2026-12-01,synthetic:m:seed0,test,agent,final,1,9.0,2.05,89300,M1,fx,docs/x.md § s,",
    ",synthetic:m:seed0,test,sma,,,,2.05,89300,M1,fx,issue 1,figure not stated",
]


def _write(tmp_path: Path, rows: list[str], name: str = "reg.csv") -> Path:
    path = tmp_path / name
    path.write_text("# a comment line\n" + HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _headline_dsr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )


# --- the shipped registry -------------------------------------------------------------------


def test_shipped_registry_validates_and_holds_the_markets_the_docs_score():
    rows = load_registry(REGISTRY)
    by_market = {m.market: m for m in markets(rows)}
    # real USD/JPY August: four runs of the agent (final and best-by-val each) and three baselines
    aug = by_market["real:USDJPY-M1-2016:Aug"]
    assert aug.n_configurations == 11
    assert aug.find("R-usdjpy-newdef: the forecast-band default, 1M steps", "final").sharpe == -5.7
    # seed 0's figure: nine training seeds of the default before 2026-12-08, median of 10.7-12.7
    demo = by_market["synthetic:demo-600k:seed0"]
    old_default = (
        "fcband-600k: forecast alone, lookback 1, training cost x0.25 (the default to 2026-12-08, 4 x 8,192 rollouts)"
    )
    c = demo.find(old_default, "final")
    assert len(c.sharpes) == 9 and min(c.sharpes) == 10.7 and max(c.sharpes) == 12.7
    # the audit's fresh seeds are registered, so they are no longer fresh for these configurations
    assert {"synthetic:demo-600k:seed11", "synthetic:demo-600k:seed23"} <= set(by_market)
    # the headline's fresh seeds: the old default (4 x 8,192) and today's (16 x 2,048) each scored once
    # per training seed (0, 1, 2), final and best-by-val, and the three baselines the first scored
    for seed in (101, 202):
        fresh = by_market[f"synthetic:demo-600k:seed{seed}"]
        assert fresh.n_configurations == 7 and fresh.n_scorings == 15
        assert len(fresh.find("the default (forecast band), 1M steps", "final").sharpes) == 3
        assert len(fresh.find("the default (16 x 2,048 rollouts), 1M steps", "final").sharpes) == 3
    assert all(r.split == "test" for r in rows)


def test_every_cited_doc_section_exists():
    """A row's source names a doc and a section; renaming or deleting the section breaks the trail."""
    headings: dict[str, set[str]] = {}
    for row in load_registry(REGISTRY):
        if not row.source.startswith("docs/"):
            continue
        doc, _, section = row.source.partition(" § ")
        if doc not in headings:
            text = (ROOT / doc).read_text(encoding="utf-8")
            headings[doc] = {ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#")}
        assert section in headings[doc], f"{row.source!r} (line {row.line}) names no heading of {doc}"
    # positive control: a section that is not there is caught by the same lookup
    assert "Candidates that were never run" not in headings["docs/rl-experiments.md"]


# --- validation: clear errors, positive controls ---------------------------------------------


def test_a_good_file_loads_and_groups_seeds_into_configurations(tmp_path):
    [m] = markets(load_registry(_write(tmp_path, GOOD)))
    assert m.n_scorings == 4 and m.n_configurations == 3  # agent's two seeds are one configuration
    assert m.find("agent", "final").sharpe == 10.0  # median of 11 and 9
    assert m.find("sma", "").sharpe is None  # counted in N, no Sharpe
    assert sorted(m.sharpes) == [10.0, 12.0]
    assert m.n_test_bars == 89300


@pytest.mark.parametrize(
    ("index", "bad", "column", "words"),
    [
        (
            1,
            "2026-12-01,synthetic:m:seed0,test,agent,final,0,eleven,2.05,89300,M1,fx,docs/x.md § s,",
            "test_sharpe",
            "eleven",
        ),
        (1, "2026-12-01,synthetic:m:seed0,val,agent,final,0,11.0,2.05,89300,M1,fx,docs/x.md § s,", "split", "'val'"),
        (
            1,
            "2026-12-01,synthetic:m:seed0,test,agent,last,0,11.0,2.05,89300,M1,fx,docs/x.md § s,",
            "checkpoint",
            "'last'",
        ),
        (
            1,
            "01/12/2026,synthetic:m:seed0,test,agent,final,0,11.0,2.05,89300,M1,fx,docs/x.md § s,",
            "date",
            "YYYY-MM-DD",
        ),
        (
            1,
            "2026-12-01,synthetic:m:seed0,test,agent,final,0,11.0,2.05,89300,M7,fx,docs/x.md § s,",
            "timeframe/calendar",
            "M7",
        ),
        (
            1,
            "2026-12-01,synthetic:m:seed0,test,agent,final,0,11.0,2.05,29329,M1,fx,docs/x.md § s,",
            "n_test_bars",
            "89300",
        ),
        (
            2,
            "2026-12-01,synthetic:m:seed0,test,agent,final,0,8.0,2.05,89300,M1,fx,docs/x.md § s,",
            "config",
            "already on line",
        ),
        (1, "2026-12-01,synthetic:m:seed0,test,agent,final,0,11.0,2.05,89300,M1,fx,,", "source", "empty"),
    ],
)
def test_a_malformed_row_is_named_by_file_line_and_column(tmp_path, index, bad, column, words):
    rows = list(GOOD)
    rows[index] = bad
    path = _write(tmp_path, rows)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    msg = str(err.value)
    # physical line: 1 comment + 1 header, then the rows
    assert msg.startswith(f"{path}:{index + 3}: column {column!r}"), msg
    assert words in msg
    # positive control: the same file with the good row loads
    assert load_registry(_write(tmp_path, GOOD, "good.csv"))


def test_bar_counts_of_one_split_may_differ_by_rounding_only(tmp_path):
    """Docs round a split's length (89,300), a run counts it (89,328): the same split."""
    rows = [*GOOD, "2026-12-08,synthetic:m:seed0,test,run x,final,0,7.0,,89328,M1,fx,ztb eval run e1,"]
    [m] = markets(load_registry(_write(tmp_path, rows)))
    assert m.n_test_bars == 89300
    rows[-1] = rows[-1].replace("89328", "29329")  # positive control: another split's length is refused
    with pytest.raises(RegistryError, match="more than 1 % apart"):
        load_registry(_write(tmp_path, rows, "other.csv"))


def test_wrong_header_or_column_count_is_refused(tmp_path):
    path = tmp_path / "reg.csv"
    path.write_text(HEADER.replace("test_sharpe,", "sharpe,") + "\n" + GOOD[0] + "\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"reg\.csv:1: header must be"):
        load_registry(path)
    with pytest.raises(RegistryError, match=r"reg\.csv:4: expected 13 columns, got 12"):
        load_registry(_write(tmp_path, [GOOD[0], GOOD[1].rsplit(",", 1)[0]]))


@pytest.mark.slow  # two interpreter starts: about 2 s
def test_the_script_exits_nonzero_on_a_bad_registry(tmp_path):
    bad = _write(tmp_path, [GOOD[0].replace(",12.0,", ",abc,")])
    done = _headline_dsr("--registry", str(bad))
    assert done.returncode == 2 and "column 'test_sharpe'" in done.stderr and done.stdout == ""
    assert _headline_dsr("--registry", str(_write(tmp_path, GOOD, "good.csv"))).returncode == 0


def _cells(line: str) -> dict[str, str]:
    return dict(zip(COLUMNS, next(iter(csv.reader([line]))), strict=True))


def test_append_validates_the_whole_file_first_and_leaves_it_alone_on_error(tmp_path):
    reg = _write(tmp_path, GOOD[:2])
    before = reg.read_text(encoding="utf-8")
    with pytest.raises(RegistryError, match=r"reg\.csv:5: column 'test_sharpe'"):
        append_scoring(reg, _cells(GOOD[2].replace(",9.0,", ",nine,")))
    with pytest.raises(RegistryError, match="already on line 4"):
        append_scoring(reg, _cells(GOOD[1]))
    assert reg.read_text(encoding="utf-8") == before
    # positive control: the good row goes in, even after a last line without its newline
    reg.write_text(before.rstrip("\n"), encoding="utf-8")
    row = append_scoring(reg, _cells(GOOD[2]))
    assert row.line == 5 and row.train_seed == 1 and len(load_registry(reg)) == 3
    # a new file starts with the header
    fresh = tmp_path / "new" / "reg.csv"
    fresh.parent.mkdir()
    assert append_scoring(fresh, _cells(GOOD[0])).line == 2
    assert fresh.read_text(encoding="utf-8").splitlines()[0] == HEADER


# --- the deflation --------------------------------------------------------------------------


def test_with_one_configuration_the_dsr_is_the_psr_against_zero(tmp_path):
    [m] = markets(load_registry(_write(tmp_path, GOOD)))
    d = deflate(3.0, m, n_trials=1)
    assert d.expected_max_sharpe == 0.0
    assert d.dsr == pytest.approx(probabilistic_sharpe_ratio(3.0 / math.sqrt(PPY), 89300))


def test_the_dsr_falls_as_more_configurations_were_scored(tmp_path):
    [m] = markets(load_registry(_write(tmp_path, GOOD)))
    dsrs = [deflate(9.0, m, n_trials=n).dsr for n in (1, 2, 5, 20, 100, 1000)]
    assert all(a > b for a, b in zip(dsrs, dsrs[1:], strict=False)), dsrs
    # the registry's own N: three configurations
    assert deflate(9.0, m).n_trials == 3
    assert deflate(9.0, m).dsr == pytest.approx(deflate(9.0, m, n_trials=3).dsr)


def test_the_trial_spread_is_the_registrys_but_never_below_sampling_noise(tmp_path):
    wide = [GOOD[0], GOOD[1], GOOD[2].replace(",9.0,", ",-20.0,")]
    [m] = markets(load_registry(_write(tmp_path, wide)))
    d = deflate(9.0, m)
    assert d.variance_source == "registry"
    assert d.trial_sharpe_sd == pytest.approx(statistics.stdev([12.0, -4.5]))  # ridge; agent's median of 11, -20
    # two close Sharpes (10.0 and 12.0, SD 1.4) would make N harmless; the floor is the split's noise
    [close] = markets(load_registry(_write(tmp_path, GOOD, "close.csv")))
    c = deflate(9.0, close)
    assert c.variance_source == "sampling variance"
    assert c.trial_sharpe_sd == pytest.approx(math.sqrt(PPY / 89299) * math.sqrt(1 + 0.5 * (9.0**2) / PPY), rel=1e-6)


def test_without_bars_or_se_the_dsr_is_refused(tmp_path):
    rows = [r.replace(",2.05,89300,", ",,,") for r in GOOD]
    [m] = markets(load_registry(_write(tmp_path, rows)))
    assert m.n_test_bars is None
    with pytest.raises(RegistryError, match="neither the number of test bars nor a standard error"):
        deflate(9.0, m)
    # from a stated SE alone: T = ppy / SE^2
    [s] = markets(load_registry(_write(tmp_path, [r.replace(",2.05,89300,", ",3.5,,") for r in GOOD], "se.csv")))
    assert s.n_test_bars == round(PPY / 3.5**2) and s.n_test_bars_source == "from the stated SE"


# --- docs/results.md stays in step with the registry ------------------------------------------


def _doc_block() -> tuple[list[str], str]:
    text = RESULTS.read_text(encoding="utf-8")
    m = re.search(r"```\n\$ python benchmarks/headline_dsr\.py([^\n]*)\n(.*?)```", text, re.S)
    assert m, "docs/results.md has no `$ python benchmarks/headline_dsr.py` block"
    return shlex.split(m.group(1)), m.group(2)


def test_results_md_prints_what_the_registry_gives_today():
    """Adding a row to the registry (anywhere: the first line counts every scoring) without
    rerunning the command into docs/results.md fails here."""
    args, printed = _doc_block()
    done = _headline_dsr(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed, "docs/results.md's headline_dsr block is stale: rerun the command shown there"


def test_the_doc_check_would_catch_an_added_row(tmp_path):
    """Positive control: the same command on the registry plus one row no longer matches the doc."""
    args, printed = _doc_block()
    extra = tmp_path / "plus_one.csv"
    row = "2026-12-08,synthetic:demo-600k:seed0,test,one more candidate,final,0,9.9,2.05,89300,M1,fx,docs/x.md § s,"
    extra.write_text(REGISTRY.read_text(encoding="utf-8") + row + "\n", encoding="utf-8")
    done = _headline_dsr("--registry", str(extra), *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout != printed
    assert "N = 16 configurations" in done.stdout  # was 15


# --- `ztb eval --split test --registry PATH`, through the real CLI on a tiny trained run --------

FAST_EVAL = [*SHARED_FAST_EVAL, "vol_sizing.enabled=false"]


@pytest.fixture(scope="module")
def registry_run(tiny_agent, tmp_path_factory):
    return copy_run(tiny_agent, tmp_path_factory.mktemp("registrycli") / "artifacts")


def _eval(run: Path, *args: str) -> int:
    from ztb_core.cli import main

    sets = [a for p in FAST_EVAL for a in ("--set", p)]
    return main(["eval", "--model", str(run), "--episodes", "1", *args, *sets])


@pytest.mark.slow
def test_ztb_eval_appends_its_test_scoring_to_the_registry_once(registry_run, tmp_path, monkeypatch, capsys):
    from ztb_core.paths import runs_dir

    monkeypatch.setenv("ZTB_ARTIFACTS", str(registry_run.parent.parent))
    reg = _write(tmp_path, GOOD)
    before = reg.read_text(encoding="utf-8")
    assert _eval(registry_run, "--split", "test", "--registry", str(reg), "--run-id", "reg1") == 0, capsys.readouterr()
    rows = load_registry(reg)
    assert reg.read_text(encoding="utf-8").startswith(before) and len(rows) == len(GOOD) + 1
    new = rows[-1]
    report = json.loads((runs_dir() / "reg1" / "reports" / "eval_reg1.json").read_text())
    # the tiny agent's market: 16,000 synthetic bars, market seed 0; no checkpoint was scored on
    # val (eval.every_steps=0), so the one evaluated is the newest: the final one
    assert (new.market, new.split, new.checkpoint, new.train_seed) == ("synthetic:demo-16k:seed0", "test", "final", 0)
    assert new.config == f"run {registry_run.name}"
    assert new.test_sharpe == pytest.approx(report["metrics"]["sharpe"], abs=1e-4)
    assert new.n_test_bars == report["meta"]["n_bars"] and new.source.startswith("ztb eval run reg1")
    # the same checkpoint on the same split again is the same trial: not a second row
    capsys.readouterr()
    assert _eval(registry_run, "--split", "test", "--registry", str(reg), "--run-id", "reg2") == 0
    assert "already holds this scoring" in " ".join(capsys.readouterr().out.split())
    assert len(load_registry(reg)) == len(GOOD) + 1


@pytest.mark.slow
def test_ztb_eval_refuses_a_registry_for_a_split_other_than_test(registry_run, tmp_path, monkeypatch, capsys):
    from ztb_core.paths import runs_dir

    monkeypatch.setenv("ZTB_ARTIFACTS", str(registry_run.parent.parent))
    reg = _write(tmp_path, GOOD)
    before = reg.read_text(encoding="utf-8")
    code = _eval(registry_run, "--split", "val", "--registry", str(reg), "--run-id", "regval")
    err = capsys.readouterr().err
    err = " ".join(err.split())  # the console may wrap a long line
    assert code != 0 and "--registry records scorings on a market's test split" in err and "'val'" in err
    assert reg.read_text(encoding="utf-8") == before  # nothing appended
    assert not (runs_dir() / "regval").exists()  # refused before an eval run directory was made
    # a broken registry is refused before the evaluation runs too
    broken = _write(tmp_path, [GOOD[0].replace(",12.0,", ",x,")], "broken.csv")
    code = _eval(registry_run, "--split", "test", "--registry", str(broken), "--run-id", "regbroken")
    assert code != 0 and "column 'test_sharpe'" in " ".join(capsys.readouterr().err.split())
    assert not (runs_dir() / "regbroken").exists()
