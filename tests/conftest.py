"""Shared fixtures: every test gets its own artifacts/data folders and global kill-file, so
nothing is written into the repository and runs never see each other."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# A suite started as a background job (`make test &`, nohup, a CI runner's non-interactive shell)
# inherits SIGINT ignored, and so does every process a test starts: a test that stops a child with
# Ctrl-C (`ztb emulator`) would wait for it forever. Python's own handler is put back, so children
# start with SIGINT at its default. Runs in every pytest-xdist worker too (they load this file).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# One compute thread per process (torch, OpenBLAS), inherited by every CLI subprocess a test starts:
# the suite already runs a test per core (pytest-xdist), so a second intra-op thread only competes
# for a busy core and spin-waits. Measured on a 2-core machine: an in-process pretraining test
# took 50 s of CPU with torch's default threads against 16 s with one. Set before anything imports
# torch; a value already in the environment is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# CI replays the same examples on every run (a red build is reproducible); locally each run
# explores new ones. `--hypothesis-seed=N` overrides either.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def isolated_artifacts(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("ztb")
    monkeypatch.setenv("ZTB_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("ZTB_DATA", str(root / "artifacts" / "data"))
    monkeypatch.setenv("ZTB_KILL", str(root / "ztb.stop"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield root / "artifacts"


@pytest.fixture
def artifacts(isolated_artifacts) -> Path:
    isolated_artifacts.mkdir(parents=True, exist_ok=True)
    return isolated_artifacts


def ztb_cmd(*args: str) -> list[str]:
    """The CLI as a user runs it, through this interpreter."""
    return [sys.executable, "-m", "ztb_core.cli", *args]


@pytest.fixture
def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- runs trained once per test run ------------------------------------------------------------
# A tiny agent of the default shape (fx synthetic market, technical-66 features, ridge forecast)
# with small data and rollouts: what the evaluation and live-policy tests read. Tests that are
# about training itself (resume, kill, checkpoints, learning) train their own runs.
TINY_AGENT = (
    # a train split longer than a week of M1 bars: eval's volatility forecaster (HAR) needs one
    "data.synthetic.n_bars=16000",
    "splits.embargo=0",
    "env.lookback=8",
    "env.episode_length=256",
    "ppo.n_envs=2",
    "ppo.n_steps=64",
    "ppo.batch_size=64",
    "ppo.n_epochs=2",
    "ppo.net_arch=[32,32]",
    "checkpoint.every_steps=256",
    "eval.every_steps=0",
    "total_timesteps=256",
)


#: `ztb eval --set` overrides that keep a full evaluation of a tiny run to seconds (fewer bootstrap
#: resamples, Monte Carlo paths and random baselines; a short equity curve)
FAST_EVAL = (
    "bootstrap.n_resamples=100",
    "monte_carlo.n_paths=200",
    "monte_carlo.horizon_days=0.5",
    "baselines.random_seeds=5",
    "report.curve_points=100",
)


class SharedRuns:
    """Runs trained once per test run and shared by every pytest-xdist worker: the first worker
    to ask trains under a file lock, the others wait on the lock and reuse the finished run.
    A run is keyed by its name and config, so a changed config trains afresh."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, name: str, config: tuple[str, ...], train: Callable[[Path], Path]) -> Path:
        """The run dir `train(artifacts_dir)` produces for this config; read it, never write into
        it (copy it with `copy_run` first where a test writes next to or into the run)."""
        digest = hashlib.sha256(json.dumps([name, *config]).encode()).hexdigest()[:12]
        home = self.root / f"{name}-{digest}"
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{name}-{digest}.lock")):
            ready = home / "ready.json"
            if ready.exists():
                return Path(json.loads(ready.read_text())["run_dir"])
            if home.exists():  # a worker that died mid-training left a partial run: start over
                shutil.rmtree(home)
            run_dir = train(home / "artifacts")
            ready.write_text(json.dumps({"run_dir": str(run_dir)}))
            return run_dir


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> SharedRuns:
    # under xdist each worker's basetemp is <run temp>/popen-gwN: the parent is common to the run
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return SharedRuns(root / "shared-runs")


def copy_run(run_dir: Path, artifacts: Path) -> Path:
    """A private copy of a shared run under `artifacts/runs/`, for tests that write into it
    (evaluation runs, the trial registry)."""
    return Path(shutil.copytree(run_dir, artifacts / "runs" / run_dir.name))


def _train_tiny_agent(artifacts: Path) -> Path:
    from ztb_core.config import load_config
    from ztb_core.rl.config import TrainConfig
    from ztb_core.rl.trainer import run_training

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZTB_ARTIFACTS", str(artifacts))
        mp.setenv("ZTB_DATA", str(artifacts / "data"))
        mp.setenv("ZTB_KILL", str(artifacts.parent / "global.stop"))
        cfg = load_config(TrainConfig, None, list(TINY_AGENT))
        return run_training(cfg, run_id="agent", progress=False).run_dir


@pytest.fixture(scope="session")
def tiny_agent(shared_runs: SharedRuns) -> Path:
    """The TINY_AGENT run, trained once per test run (read-only: see `SharedRuns.get`)."""
    return shared_runs.get("tiny-agent", TINY_AGENT, _train_tiny_agent)


# --- the `slow` mark, from measured durations ---------------------------------------------------
# `make test-fast` runs `-m "not slow"`; `make test` (CI) runs everything. A test is slow when it
# trains, starts long-running processes, or took 2 s or more (setup + call + teardown) under
# `pytest -n 2 --durations=0` on a loaded 2-core machine. Listed here by file (every test in it)
# or by test name (every parameter), so files other people are editing need no change. Tests may
# also carry `@pytest.mark.slow` themselves.
SLOW_FILES: frozenset[str] = frozenset(
    {
        "foundation/test_tensorboard.py",
        "live/test_crash.py",
        "live/test_readme_agent.py",
        "live/test_secrets_artifacts.py",
        "pretrain/test_bad_data_leaves_no_run.py",
        "pretrain/test_fast_dev_run.py",
        "pretrain/test_leak.py",
        "pretrain/test_training.py",
        "rl/test_bad_input.py",
        "rl/test_learning.py",
        "rl/test_train_processes.py",
        "rl/test_tune_postgres.py",
    }
)
SLOW_TESTS: frozenset[str] = frozenset(
    {
        "data/test_features.py::test_causality_rows_after_t_do_not_change_anything_at_or_before_t",
        "data/test_import_store.py::test_parquet_import_and_cli_roundtrip",
        "data/test_import_store.py::test_reimport_overlap_merges_without_duplicates",
        "data/test_online_parity.py::test_crypto_replay_with_restarts_equals_offline",
        "data/test_online_parity.py::test_flat_and_zero_volume_windows_are_exact",
        "data/test_online_parity.py::test_fx_replay_with_restarts_equals_offline",
        "data/test_online_parity.py::test_restart_with_long_buffer_equals_full_history",
        "data/test_plot.py::test_info_plot_auto_goes_beside_the_dataset_and_rejects_other_formats",
        "data/test_plot.py::test_info_plot_writes_a_valid_png",
        "data/test_realdata.py::test_bitflyer_trades_import",
        "data/test_resample.py::test_last_completed_is_causal_and_matches_brute_force",
        "data/test_resample.py::test_resample_equals_brute_force_and_keeps_invariants",
        "data/test_stream.py::test_kill_file_stops_a_streaming_run",
        "data/test_stream.py::test_streamed_features_equal_offline_features",
        "data/test_stream.py::test_train_headless_with_streaming_completes_and_writes_stream_metrics",
        "data/test_synthetic.py::test_signal_ceiling_is_what_the_train_config_states",
        "evaluation/test_bootstrap.py::test_bad_arguments",
        "evaluation/test_bootstrap.py::test_results_do_not_depend_on_threads_or_chunking_order",
        "evaluation/test_bootstrap.py::test_sharpe_interval_covers_the_true_sharpe_about_95_percent_of_the_time",
        "evaluation/test_cli.py::test_a_holdout_period_is_evaluated_whole",
        "evaluation/test_cli.py::test_default_eval_uses_the_best_checkpoint_by_validation_and_says_so",
        "evaluation/test_cli.py::test_every_look_at_the_test_split_is_a_trial_and_n_trials_overrides_stamped",
        "evaluation/test_cli.py::test_ztb_eval_writes_a_complete_report_into_an_eval_run",
        "evaluation/test_comparison.py::test_8_01_against_7_94_matches_and_the_summary_prints_the_interval",
        "evaluation/test_comparison.py::test_a_clear_gap_is_beats_or_behind_and_a_row_without_an_interval_claims_nothing",
        "evaluation/test_comparison.py::test_a_flat_agent_is_compared_as_sharpe_0",
        "evaluation/test_metrics.py::test_metrics_agree_with_quantstats",
        "evaluation/test_report.py::test_write_report_writes_json_markdown_and_four_pictures",
        "evaluation/test_strong_baselines.py::test_verdict_compares_with_the_strongest_baseline_not_the_weakest",
        "evaluation/test_trials.py::test_periodic_evaluation_records_trials_psr_dsr_and_the_strongest_baseline",
        "evaluation/test_trials.py::test_two_processes_appending_never_interleave_lines",
        "foundation/test_bundled_configs.py::test_bundled_config_equals_model_defaults",
        "foundation/test_cli_and_telemetry.py::test_doctor_as_subprocess",
        "foundation/test_config_drift.py::test_every_key_is_read_by_the_code",
        "foundation/test_runs.py::test_reader_tails_while_other_process_appends",
        "foundation/test_runs.py::test_sigkill_mid_write_tears_a_line_and_reopen_repairs_it",
        "foundation/test_stop.py::test_stop_errors",
        "foundation/test_stop.py::test_stop_force_escalates_to_sigkill",
        "foundation/test_stop.py::test_stop_force_escalates_to_sigterm",
        "live/test_backfill.py::test_backfill_joins_the_store_to_the_exchange_history",
        "live/test_backfill.py::test_trained_agent_decides_from_the_first_bar",
        "live/test_backfill_paging.py::test_a_fast_replay_on_the_wall_clock_keeps_its_history_whole",
        "live/test_backfill_paging.py::test_the_store_is_read_first_and_only_newer_trades_are_paged",
        "live/test_exposure.py::test_a_reducing_order_never_grows_nor_flips_the_position",
        "live/test_exposure.py::test_bounds_never_understate_the_exchange_position",
        "live/test_exposure.py::test_room_keeps_every_reachable_position_within_the_cap",
        "live/test_fetch.py::test_cli_emulator_serves_until_interrupted",
        "live/test_fetch.py::test_fetch_history_pages_back_to_since_and_stores_complete_bars",
        "live/test_fuzz.py::test_kill9_of_a_fresh_bot_process_and_restarts",
        "live/test_fuzz.py::test_live_fault_fuzzer",
        "live/test_history_need.py::test_the_need_covers_every_minute_of_the_day",
        "live/test_online_features.py::test_a_gap_in_the_buffer_rebuilds_and_still_matches",
        "live/test_online_features.py::test_frozen_encoder_embeds_only_the_last_rows_exactly",
        "live/test_runner.py::test_daily_report_at_each_utc_day_rollover",
        "live/test_runner.py::test_dry_run_session_end_to_end",
        "live/test_runner.py::test_kill_file_cancels_open_orders_and_stops",
        "live/test_runner.py::test_stop_loss_is_checked_on_the_watch_timer_when_no_bar_closes",
        "live/test_stream.py::test_a_silent_websocket_falls_back_to_rest_and_comes_back",
        "live/test_stream.py::test_a_stall_on_both_channels_trips_the_stale_breaker_and_syncs_go_on",
        "live/test_stream.py::test_live_dry_run_decides_from_the_websocket",
        "live/test_stream.py::test_live_falls_back_to_rest_when_the_websocket_is_dead",
        "live/test_stream.py::test_live_keeps_deciding_when_the_websocket_goes_silent",
        "live/test_stream.py::test_websocket_bars_equal_the_tape",
        "live/test_unknown_outcomes.py::test_a_late_execution_is_not_ruled_never_placed_nor_placed_twice",
        "live/test_unknown_outcomes.py::test_a_twin_placed_after_our_timed_out_order_is_not_adopted",
        "live/test_unknown_outcomes.py::test_a_twin_placed_just_before_our_timed_out_order_is_not_adopted",
        "live/test_unknown_outcomes.py::test_an_order_executed_after_the_window_blocks_and_alerts_until_the_operator_decides",
        "live/test_unknown_outcomes.py::test_an_unknown_order_is_ruled_not_placed_only_after_the_window",
        "ops/test_canary.py::test_a_killed_and_resumed_live_session_agrees_with_the_exchange",
        "ops/test_canary.py::test_kill_resume_with_a_failing_checkpoint_write",
        "ops/test_canary.py::test_live_lite_under_exchange_faults",
        "ops/test_canary.py::test_live_session_through_a_silent_websocket_stall",
        "ops/test_canary.py::test_live_session_with_a_late_execution_agrees_with_the_exchange",
        "ops/test_canary.py::test_phases_of_one_canary_do_not_judge_each_other_s_journals",
        "ops/test_run_write_failures.py::test_a_training_run_on_a_full_tmpfs_ends_failed_with_one_line_and_no_traceback",
        "pretrain/test_cli_stop_resume.py::test_kill_file_stops_with_checkpoint_and_resume_from_an_older_checkpoint_finishes",
        "pretrain/test_ddp.py::test_ddp_on_cpu_completes_stops_every_rank_and_resumes",
        "pretrain/test_embed_cache.py::test_an_unreadable_cache_is_recomputed",
        "pretrain/test_embed_cache.py::test_embeddings_are_cached_by_encoder_data_and_reported_with_rate_and_eta",
        "pretrain/test_nonfinite.py::test_a_clean_run_is_not_stopped",
        "pretrain/test_nonfinite.py::test_non_finite_stops_the_run_naming_step_term_and_batch",
        "pretrain/test_t5_export.py::test_bad_config_fails_before_any_run_folder_exists",
        "pretrain/test_t5_export.py::test_encoder_embeddings_are_causal_and_match_the_model",
        "pretrain/test_vol_probe.py::test_bad_probe_options_are_refused_clearly",
        "pretrain/test_vol_probe.py::test_vol_probe_end_to_end_on_a_short_run",
        "rl/test_checkpoint_drift.py::test_train_says_which_checkpoint_eval_scores_and_how_far_the_newest_is",
        "rl/test_encoder_handoff.py::test_finetune_agent_reproduces_positions_acts_and_evaluates",
        "rl/test_encoder_handoff.py::test_finetune_env_feeds_the_encoder_the_frozen_inputs",
        "rl/test_encoder_handoff.py::test_finetune_trains_the_encoder_and_resumes",
        "rl/test_encoder_handoff.py::test_frozen_agent_reproduces_positions_and_evaluates",
        "rl/test_encoder_handoff.py::test_frozen_embeddings_do_not_look_ahead",
        "rl/test_encoder_handoff.py::test_frozen_observation_is_features_plus_exact_embeddings",
        "rl/test_forecast.py::test_a_run_recorded_before_only_existed_loads_and_resumes_with_the_features_too",
        "rl/test_forecast.py::test_ztb_eval_scores_a_forecast_agent_on_the_whole_period",
        "rl/test_market_description.py::test_synthetic_market_states_its_ceilings_at_the_run_costs",
        "rl/test_periodic_eval.py::test_each_evaluation_row_says_beats_matches_or_behind_from_the_paired_interval",
        "rl/test_ppo_settings.py::test_a_total_off_the_rollout_grid_never_trains_with_a_negative_learning_rate",
        "rl/test_tune.py::test_a_pruned_trial_is_stopped_through_its_kill_file",
        "rl/test_tune.py::test_bad_knob_or_storage_fails_before_any_run_exists",
        "rl/test_tune.py::test_two_workers_share_one_study_and_no_trial_is_lost_or_duplicated",
        "rl/test_walkforward.py::test_walkforward_trains_each_fold_and_reports_out_of_sample_only",
        "rl/test_warm_start.py::test_a_new_run_starts_from_the_source_policy",
        "tui/test_app.py::test_checkpoint_verify_and_delete_with_confirmation",
        "tui/test_app.py::test_command_palette_and_keyboard_navigation",
        "tui/test_app.py::test_kind_specific_curves",
        "tui/test_app.py::test_launch_dialog_starts_a_detached_run",
        "tui/test_app.py::test_logs_follow_and_events_highlight_alerts",
        "tui/test_app.py::test_readonly_hides_launch_stop_delete",
        "tui/test_app.py::test_resume_from_checkpoint_launches_detached",
        "tui/test_app.py::test_run_view_curves_resources_progress",
        "tui/test_app.py::test_stop_all_writes_the_global_kill_file",
        "tui/test_app.py::test_stop_button_confirm_countdown_and_final_state",
        "tui/test_app.py::test_stop_escalates_to_sigterm_then_sigkill",
        "tui/test_charts.py::test_live_equity_chart_draws_its_drawdown",
        "tui/test_checkpoints_logs_host.py::test_cursor_stays_on_a_pruned_checkpoint_and_v_says_so",
        "tui/test_checkpoints_logs_host.py::test_long_log_lines_wrap",
        "tui/test_checkpoints_logs_host.py::test_resume_refuses_a_corrupt_checkpoint",
        "tui/test_checkpoints_logs_host.py::test_verdict_read_by_the_next_console",
        "tui/test_e2e.py::test_launch_watch_and_stop_a_real_training_run",
        "tui/test_keys_and_layout.py::test_80x24_every_panel_is_reachable_by_scrolling",
        "tui/test_keys_and_layout.py::test_a_dialog_does_not_freeze_the_screen_behind_it",
        "tui/test_keys_and_layout.py::test_a_stale_run_shows_no_rate_or_eta",
        "tui/test_keys_and_layout.py::test_compare_overlays_marked_runs",
        "tui/test_keys_and_layout.py::test_help_screen_opens_on_question_mark_and_closes_on_escape",
        "tui/test_keys_and_layout.py::test_layout_adapts",
        "tui/test_keys_and_layout.py::test_no_gpu_is_said_once",
        "tui/test_keys_and_layout.py::test_open_stays_in_the_footer_and_jk_gG_move_the_cursor",
        "tui/test_keys_and_layout.py::test_r_refreshes_in_both_views",
        "tui/test_keys_and_layout.py::test_slash_filters_and_escape_clears",
        "tui/test_kind_views.py::test_eval_run_shows_verdict_dsr_metrics_and_equity",
        "tui/test_kind_views.py::test_live_view_shows_position_orders_fills_and_breakers",
        "tui/test_kind_views.py::test_readonly_console_cannot_reset_breakers",
        "tui/test_kind_views.py::test_tune_study_lists_trials_and_opens_one",
        "tui/test_snapshots.py::test_eval_report_view",
        "tui/test_snapshots.py::test_live_run_trading_view",
        "tui/test_snapshots.py::test_run_view_curves_and_resources",
        "tui/test_snapshots.py::test_run_view_gpu_unavailable",
        "tui/test_snapshots.py::test_run_view_scrolled_to_the_end_at_80x24",
        "tui/test_snapshots.py::test_run_view_tabs",
        "tui/test_snapshots.py::test_runs_list",
        "tui/test_snapshots.py::test_stop_confirmation",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if not path.is_relative_to(tests_dir):
            continue
        rel = path.relative_to(tests_dir).as_posix()
        name = item.name.split("[", 1)[0]  # every parameter of a slow test
        if rel in SLOW_FILES or f"{rel}::{name}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    items[:] = longest_first(items)


#: fixtures whose first use in a test run builds something that takes a minute (real CLI runs)
LONG_FIXTURES = frozenset({"real_runs"})


def longest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """Modules in three tiers: those slow as a whole (SLOW_FILES, or reading a fixture of
    LONG_FIXTURES), then those holding some slow tests, then the quick ones. pytest-xdist hands tests
    out in this order, so the long ones start early and the quick ones fill the end, instead of one
    worker finishing a minute-long test alone while the others idle. Within a tier the modules keep
    their order, and a module's tests stay together (its fixtures are still set up once per worker)."""
    tests_dir = Path(__file__).resolve().parent
    tier: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        path = Path(str(item.fspath)).resolve()
        whole = path.is_relative_to(tests_dir) and path.relative_to(tests_dir).as_posix() in SLOW_FILES
        if whole or LONG_FIXTURES & set(getattr(item, "fixturenames", ())):
            tier[module] = 0
        elif item.get_closest_marker("slow"):
            tier[module] = min(tier.get(module, 1), 1)
    return sorted(items, key=lambda item: tier.get(item.nodeid.split("::", 1)[0], 2))  # a stable sort
