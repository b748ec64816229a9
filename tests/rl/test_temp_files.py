"""Training leaves nothing outside its run folder."""

from __future__ import annotations

from ztb_core.rl.trainer import run_training

from .conftest import tiny_cfg


def test_a_run_leaves_nothing_in_the_temp_folder(tmp_path, monkeypatch):
    """SB3 builds a logger of its own when given none, and that one creates an empty
    tempdir/SB3-<time> folder per run (hundreds piled up in /tmp); training sets its own."""
    import tempfile

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("ZTB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ZTB_KILL", str(tmp_path / "global.stop"))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    outcome = run_training(tiny_cfg(total=128), progress=False)
    assert outcome.state == "completed"
    assert not list(temp.glob("SB3-*"))
    # positive control: SB3's default logger does create one there
    from stable_baselines3.common.utils import configure_logger

    configure_logger(verbose=0)
    assert list(temp.glob("SB3-*"))
