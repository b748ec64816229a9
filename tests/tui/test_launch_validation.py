"""Issue 14, point 3: the launch dialog checks overrides with the same typed config the command
loads, before anything starts; a misspelt key names the closest valid one; a steps field."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_app import spy_launch, wait_for  # noqa: F401  (fixture)
from textual.widgets import Input, Select, Static

from ztb_core.config import closest_key, load_config, model_keys
from ztb_core.errors import ConfigError
from ztb_tui.launch_check import job_config_model, validate_launch
from ztb_tui.launching import JOB_KINDS
from ztb_tui.screens.launch import LaunchScreen
from ztb_tui.screens.runs import RunsScreen

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def importable(kind: str) -> bool:
    try:
        job_config_model(kind)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("kind", list(JOB_KINDS))
def test_every_shown_example_is_valid_for_its_kind(kind: str) -> None:
    if not importable(kind):
        pytest.skip(f"the model of {JOB_KINDS[kind].config} does not import in this tree right now")
    job = JOB_KINDS[kind]
    final = validate_launch(kind, CONFIGS / job.config, [job.example])
    assert final == [job.example]
    # the CLI's own loader accepts exactly what the dialog passes
    load_config(job_config_model(kind), CONFIGS / job.config, final)


def test_the_old_example_is_refused_with_the_key_it_meant() -> None:
    with pytest.raises(ConfigError) as err:
        validate_launch("train", CONFIGS / "train.yaml", ["ppo.total_timesteps=20000"])
    assert "unknown key 'ppo.total_timesteps'" in str(err.value)
    assert "did you mean 'total_timesteps'?" in str(err.value)


@pytest.mark.parametrize(
    "override, hint",
    [
        ("ppo.learnin_rate=0.001", "ppo.learning_rate"),
        ("data.synthetic.n_barz=5", "data.synthetic.n_bars"),
        ("seed=abc", None),  # a known key with a bad value: the typed model says why
    ],
)
def test_overrides_are_validated_by_the_typed_model(override: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        validate_launch("train", None, [override])
    if hint:
        assert f"did you mean '{hint}'?" in str(err.value)
    else:
        assert "--set seed" in str(err.value) and "integer" in str(err.value)


def test_steps_field_sets_the_kinds_step_key() -> None:
    assert validate_launch("train", None, [], "20_000") == ["total_timesteps=20000"]
    assert validate_launch("pretrain", None, [], "500") == ["trainer.max_steps=500"]
    for bad in ("0", "ten", "-5"):
        with pytest.raises(ConfigError, match="steps: expected a whole number"):
            validate_launch("train", None, [], bad)
    keys = model_keys(job_config_model("train"))
    assert "total_timesteps" in keys and "ppo.learning_rate" in keys
    assert closest_key("ppo.total_timesteps", keys) == "total_timesteps"
    assert closest_key("zzzz", keys) is None


@pytest.mark.anyio
async def test_dialog_refuses_a_bad_key_before_starting_anything(make_app, spy_launch, artifacts: Path) -> None:  # noqa: F811
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        dialog = app.screen
        assert isinstance(dialog, LaunchScreen)
        assert "ppo.learning_rate=0.0001" in dialog.query_one("#overrides", Input).placeholder
        dialog.query_one("#overrides", Input).value = "ppo.total_timesteps=20000"
        await pilot.press("ctrl+l")
        error = dialog.query_one("#launch-error", Static)
        await wait_for(pilot, lambda: "did you mean 'total_timesteps'" in str(error.render()), timeout=20)
        assert spy_launch == [] and app.screen is dialog
        assert not (artifacts / "launches").exists()  # nothing started, nothing written
        dialog.query_one("#overrides", Input).value = "ppo.learning_rate=0.0001"
        dialog.query_one("#steps", Input).value = "20000"
        dialog.query_one("#run-id", Input).value = "train-steps-1"
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(spy_launch) == 1, timeout=20)
        assert isinstance(app.screen, RunsScreen)
        argv = spy_launch[0]["argv"]
        assert argv[-6:] == [
            "--set",
            "ppo.learning_rate=0.0001",
            "--set",
            "total_timesteps=20000",
            "--run-id",
            "train-steps-1",
        ]
        app.launched[0].proc.kill()
        app.launched[0].proc.wait()


@pytest.mark.anyio
async def test_steps_field_follows_the_job_kind(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        dialog = app.screen
        dialog.query_one("#kind", Select).value = "live-minimal"
        await pilot.pause(0.2)
        assert dialog.query_one("#steps", Input).disabled
        dialog.query_one("#kind", Select).value = "pretrain"
        await pilot.pause(0.2)
        steps = dialog.query_one("#steps", Input)
        assert not steps.disabled and "trainer.max_steps" in steps.placeholder


@pytest.mark.anyio
async def test_launch_offers_only_configs_of_the_job_and_the_train_presets(make_app, fleet) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        dialog = app.screen
        assert isinstance(dialog, LaunchScreen)
        select = dialog.query_one("#config", Select)
        train = [label for label, _ in dialog._config_options()]
        assert "train.yaml" in train and "presets/features-policy.yaml" in train
        assert not {"emulator.yaml", "live.yaml", "pretrain.yaml"} & set(train)
        assert str(select.value).endswith("train.yaml")
        dialog.query_one("#kind", Select).value = "live-dry-run"
        await pilot.pause(0.2)
        assert [label for label, _ in dialog._config_options()] == ["live.yaml"]
        assert str(select.value).endswith("live.yaml")


@pytest.mark.anyio
@pytest.mark.parametrize("global_stop", [False, True])
async def test_two_errors_keep_the_buttons_on_screen_at_80x24(make_app, artifacts: Path, global_stop: bool) -> None:
    """Two misspelt keys (each with its 'did you mean') used to push Launch/Cancel below the
    bottom of a 24-line terminal: the buttons must stay where a person can see and click them."""
    if global_stop:
        import os

        Path(os.environ["ZTB_KILL"]).write_text("stop\n")  # the dialog's extra warning line, too
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        dialog = app.screen
        assert isinstance(dialog, LaunchScreen)
        dialog.query_one("#overrides", Input).value = "ppo.learnin_rate=0.001 data.synthetic.n_barz=5"
        await pilot.press("ctrl+l")
        error = dialog.query_one("#launch-error", Static)
        await wait_for(pilot, lambda: "n_bars" in str(error.render()) and "learning_rate" in str(error.render()), 20)
        await pilot.pause(0.2)
        screen = dialog.region
        for button in ("#launch", "#cancel"):
            region = dialog.query_one(button).region
            assert region.height > 0 and screen.contains_region(region), (button, region, screen)
        # and they still work: a click on Cancel closes the dialog
        await pilot.click("#cancel")
        assert not isinstance(app.screen, LaunchScreen)
