"""One way to load a config: `resolve_config` lays the bundled defaults, a `--config` file, `--set`
overrides and the command's flags in that order, validates once, names the source of a bad value,
and says where each key came from; every command and the console's launch check resolve through it
(spied below on each command's first step, and held by an AST check with a positive control); a
run records which flag set what; live's exchange settings come from configs/exchange.yaml alone."""

from __future__ import annotations

import ast
import shutil
import sys

import pytest
from pydantic import Field

import ztb_core.config as config_module
from ztb_core.cli import main
from ztb_core.config import ZtbModel, resolve_config
from ztb_core.errors import ConfigError
from ztb_core.evaluation import EvalConfig
from ztb_core.live.loop.live_config import LiveConfig
from ztb_core.paths import PACKAGE_ROOT, REPO_ROOT, configs_dir
from ztb_core.runs import RunWriter
from ztb_tui.launch_check import validate_launch
from ztb_tui.launching import JOB_KINDS


class _Inner(ZtbModel):
    depth: int = Field(1, description="a section's key")
    width: int = Field(2, description="another")


class _Probe(ZtbModel):
    alpha: float = Field(1.0, description="a leaf")
    inner: _Inner = Field(default_factory=_Inner, description="a section: layers merge key by key")
    table: dict[str, int] = Field(default_factory=dict, description="a leaf mapping: a layer replaces it")


def test_layers_apply_in_order_and_each_key_says_where_it_came_from(tmp_path):
    path = tmp_path / "probe.yaml"
    path.write_text("alpha: 2.0\ninner:\n  depth: 5\ntable:\n  a: 1\n")
    got = resolve_config(
        _Probe,
        path,
        ["inner.depth=6", "table={b: 2}"],
        {"alpha": ("--alpha", 3.0), "inner.width": ("--width", None)},
    )
    assert got.config.alpha == 3.0 and got.config.inner.depth == 6 and got.config.inner.width == 2
    assert got.config.table == {"b": 2}  # a mapping from a later layer replaces, never merges
    assert got.sources == {"alpha": "--alpha", "inner.depth": "--set", "table": "--set"}
    assert got.chosen() == got.sources  # no bundled defaults for this model


def test_a_config_file_keeps_the_bundled_defaults_it_does_not_name(tmp_path, monkeypatch):
    bundled = tmp_path / "configs"
    shutil.copytree(configs_dir(), bundled)
    monkeypatch.setenv("ZTB_CONFIGS", str(bundled))
    (bundled / "eval.yaml").write_text((bundled / "eval.yaml").read_text().replace("seed: 0", "seed: 11"))
    mine = tmp_path / "mine.yaml"
    mine.write_text("split: val\n")
    got = resolve_config(EvalConfig, mine)
    assert got.config.split == "val" and got.config.seed == 11
    assert got.sources["split"] == f"file {mine}" and got.sources["seed"] == f"file {bundled / 'eval.yaml'}"
    assert got.chosen() == {"split": f"file {mine}"}  # what a run records: not the bundled defaults


@pytest.mark.parametrize(
    "sets, flags, where",
    [
        ([], {"inner.depth": ("--depth", "deep")}, "--depth: key 'inner.depth'"),
        (["inner.depth=deep"], {}, "--set inner.depth: key 'inner.depth'"),
        ([], {}, "probe.yaml: key 'inner.depth'"),
        (["inner.detph=1"], {}, "--set inner.detph: unknown key 'inner.detph'; did you mean 'inner.depth'?"),
    ],
)
def test_an_error_names_the_source_of_the_bad_value(tmp_path, sets, flags, where):
    path = tmp_path / "probe.yaml"
    path.write_text("inner:\n  depth: deep\n" if not sets and not flags else "alpha: 1.0\n")
    with pytest.raises(ConfigError) as err:
        resolve_config(_Probe, path, sets, flags)
    assert where in str(err.value)


def test_live_reads_its_exchange_section_from_exchange_yaml(tmp_path, monkeypatch):
    bundled = tmp_path / "configs"
    shutil.copytree(configs_dir(), bundled)
    monkeypatch.setenv("ZTB_CONFIGS", str(bundled))
    text = (bundled / "exchange.yaml").read_text()
    (bundled / "exchange.yaml").write_text(text.replace("timeout_ms: 10000", "timeout_ms: 1234"))
    got = resolve_config(LiveConfig)
    assert got.config.exchange.timeout_ms == 1234
    assert got.sources["exchange.timeout_ms"] == f"file {bundled / 'exchange.yaml'}"
    # a --config file's exchange: section overrides key by key; the rest still comes from exchange.yaml
    mine = tmp_path / "live.yaml"
    mine.write_text("exchange:\n  symbol: ETH/JPY\n")
    got = resolve_config(LiveConfig, mine)
    assert (got.config.exchange.symbol, got.config.exchange.timeout_ms) == ("ETH/JPY", 1234)
    assert got.chosen() == {"exchange.symbol": f"file {mine}"}


def test_a_run_records_which_flag_set_what(tmp_path):
    got = resolve_config(_Probe, None, ["inner.depth=3"], {"alpha": ("--alpha", 2.0)})
    writer = RunWriter.create("probe", got.config, artifacts=tmp_path, config_sources=got.chosen())
    writer.close("completed")
    info = (writer.dir / "run.json").read_text()
    assert '"config_sources": {' in info and '"alpha": "--alpha"' in info and '"inner.depth": "--set"' in info


# ---- every command resolves through resolve_config -----------------------------------------------


class _Resolved(Exception):
    """Raised by the spy once a command has resolved its config: nothing after that runs."""


@pytest.fixture
def spy(monkeypatch):
    calls: list[tuple[str, dict]] = []
    real = config_module.resolve_config

    def record(model_cls, config_path=None, sets=(), flags=None, **kwargs):
        calls.append((model_cls.__name__, {k: v for k, v in (flags or {}).items() if v[1] is not None}))
        raise _Resolved

    for module in list(sys.modules.values()):  # modules that imported it by name at their top
        if getattr(module, "resolve_config", None) is real:
            monkeypatch.setattr(module, "resolve_config", record)
    return calls


#: a config file that does not exist: a command that loads its config around the spy fails at once
#: (exit 2, config file not found) instead of running (a training, an emulator serving forever)
MISSING = "/nonexistent/ztb-config.yaml"

COMMANDS = [
    (
        ["train", "--dry-run", "-n", "64", "--enable-streaming"],
        "TrainConfig",
        {"--total-timesteps", "--enable-streaming"},
    ),
    (["train", "--headless", "-n", "64"], "TrainConfig", {"--total-timesteps"}),
    (["supervise", "-n", "64"], "TrainConfig", {"--total-timesteps"}),
    (["eval", "--model", "nowhere", "--split", "val", "--seed", "3"], "EvalConfig", {"--split", "--seed"}),
    (["tune", "--trials", "2"], "TuneConfig", {"--trials"}),
    (["walkforward", "--folds", "2"], "WalkForwardConfig", {"--folds"}),
    (["live", "--dry-run", "--disable-risk-limits"], "LiveConfig", {"--dry-run", "--disable-risk-limits"}),
    (["live", "reconcile", "--paper"], "LiveConfig", {"--paper"}),
    (["exchange", "health", "--timeout-ms", "5"], "ExchangeConfig", {"--exchange", "--timeout-ms"}),
    (["data", "fetch", "--since", "2024-01-01"], "ExchangeConfig", {"--exchange", "--symbol"}),
    (["emulator", "--speed", "2"], "EmulatorConfig", {"--speed", "--port"}),
    (["data", "import", "x.csv", "-f", "csv", "-s", "X", "--column-map", "time=Date"], "DataConfig", {"--column-map"}),
    (["data", "info", "X", "--data-dir", "d"], "DataConfig", {"--data-dir"}),
    (["data", "validate", "X"], "DataConfig", set()),
    (["pretrain", "--set", "trainer.max_steps=1"], "PretrainConfig", set()),
]


@pytest.mark.parametrize("argv, model, flags", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_every_command_resolves_its_config_through_resolve_config(spy, argv, model, flags, tmp_path, monkeypatch):
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path))
    with pytest.raises(_Resolved):
        main([*argv, "--config", MISSING])
    assert spy and spy[0][0] == model
    assert flags <= {name for name, _ in spy[0][1].values()}


def test_notify_resolves_its_config_through_resolve_config(spy, monkeypatch):
    monkeypatch.delenv("DISCORD_WEBHOOK", raising=False)
    monkeypatch.delenv("ZTB_NOTIFY", raising=False)  # around the spy: "no notification target", exit 2
    with pytest.raises(_Resolved):
        main(["notify", "hello"])
    assert spy == [("NotifyConfig", {})]


@pytest.mark.parametrize("kind", list(JOB_KINDS))
def test_the_console_launch_check_resolves_through_resolve_config(spy, kind):
    with pytest.raises(_Resolved):
        validate_launch(kind, None, [])
    assert len(spy) == 1


# ---- and nothing goes around it ------------------------------------------------------------------

#: calls that load or validate a config some other way than resolve_config
SIDE_DOORS = {"load_config", "validate_config", "apply_overrides", "model_validate", "recorded_train_config"}


def side_doors(source: str) -> list[str]:
    """Side doors in a module: calls of the loaders above, and assignments to a loaded config
    (`cfg.x = ...`, `cfg.a.b = ...`), which would change it after validation and unrecorded."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in SIDE_DOORS:
                found.append(f"line {node.lineno}: {name}()")
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in [t for tgt in targets for t in (tgt.elts if isinstance(tgt, ast.Tuple) else [tgt])]:
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(target, ast.Attribute) and isinstance(root, ast.Name) and root.id == "cfg":
                found.append(f"line {node.lineno}: assignment to {ast.unparse(target)}")
    return sorted(found, key=lambda f: int(f.split(":")[0].removeprefix("line ")))  # stable: by line


def test_no_command_or_console_module_loads_a_config_around_resolve_config():
    files = sorted([*(PACKAGE_ROOT / "cli").rglob("*.py"), *(REPO_ROOT / "ztb_tui").rglob("*.py")])
    bad = {str(p.relative_to(REPO_ROOT)): side_doors(p.read_text()) for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_control_the_side_door_check_catches_each_kind():
    old_cli = (
        "cfg = load_config(LiveConfig, config, sets)\n"
        "cfg.risk.enabled = False\n"
        "cfg.policy.kind, cfg.policy.checkpoint = 'agent', checkpoint\n"
        "cfg = ExchangeConfig.model_validate(_apply(sets))\n"
        "cfg = validate_config(type(cfg), data, source='--split')\n"
    )
    assert [f.split(": ", 1)[1] for f in side_doors(old_cli)] == [
        "load_config()",
        "assignment to cfg.risk.enabled",
        "assignment to cfg.policy.kind",
        "assignment to cfg.policy.checkpoint",
        "model_validate()",
        "validate_config()",
    ]
    assert side_doors("resolved = resolve_config(LiveConfig, config, sets, flags)\ncfg = resolved.config\n") == []


def test_control_the_spy_sees_a_command_that_skips_resolve_config(spy):
    """Positive control for the spy: `config schema` loads no config, so the spy sees nothing and
    the command runs to the end."""
    assert main(["config", "schema", "ops"]) == 0
    assert spy == []
