"""One age formatter for the CLI, the disk-health lines and the console."""

from __future__ import annotations

import math

import pytest

from ztb_core.humanize import age


@pytest.mark.parametrize(
    ("seconds", "short", "words"),
    [
        (None, "-", "-"),
        (math.nan, "-", "-"),
        (5, "5s", "5s"),
        (119, "119s", "119s"),
        (600, "10m", "10 min"),
        (3 * 3600, "3.0h", "3.0 h"),
        (3 * 86400, "3d", "3.0 days"),
    ],
)
def test_age_picks_the_unit_a_person_reads(seconds, short, words) -> None:
    assert age(seconds) == short
    assert age(seconds, words=True) == words


def test_console_and_cli_share_the_formatter() -> None:
    from ztb_core.cli import core
    from ztb_tui import fmt

    assert fmt.age is age and core.age is age
