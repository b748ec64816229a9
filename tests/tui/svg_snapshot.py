"""Our own SVG snapshot comparer, for screens whose numbers legitimately change between test runs and
machines (run folders the real commands wrote: wall-clock times, durations, losses and Sharpe
ratios from training on whatever CPU runs the tests).

A screenshot (`app.export_screenshot()`, Rich's SVG) is compared through its *layout*: for every
terminal line, the sequence of styled text pieces (colour, weight) and the sequence of background
colours. Before the comparison:

- Rich's per-render ids (`terminal-1234567-r5`, `terminal-1234567-line-3`) are dropped and each
  style class is replaced by the style itself, so class numbering does not matter, colours do;
- every number becomes one `0` (with its sign, decimal point, exponent and unit suffix), so
  `-0.125`, `3.5h` and `49k` compare equal, and the column positions and blank runs a longer number
  shifts are not compared (runs of blanks become one);
- the marks a chart, sparkline or progress bar draws from the values (braille dots, points, the
  blocks ▁..█) are left out, as are the colours of their pieces (a sparkline shades each bar by its
  value); only whether the screen draws any is kept. A curve of another shape is the same chart:
  its frame, axes, tick labels and legend are compared.

What stays exact: which lines exist, every label, title and word, every border and rule with its
length, the colours and weights of text and background. A panel that is missing, a title that
changed, a colour that changed, a widget that moved to another line: all fail.

The stored file is an SVG a person can open: the screenshot with the render ids dropped and every
digit replaced by `0` (so an update does not churn on new numbers). On a mismatch the actual
screenshot (raw and normalised) and a line diff of the two layouts are written under the test's
tmp folder and their paths are in the assertion message.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from pathlib import Path

#: Rich's SVG: `.terminal-123-r4 { fill: #e0e0e0;font-weight: bold }` (the id is absent when
#: Textual exports without one)
_STYLE = re.compile(r"\.terminal-(?:\d+-)?r(\d+)\s*\{\s*([^}]*?)\s*\}")
_TEXT = re.compile(
    r'<text class="terminal-(?:\d+-)?r(\d+)" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
    r'clip-path="url\(#terminal-(?:\d+-)?line-(\d+)\)">(.*?)</text>'
)
_RECT = re.compile(
    r'<rect fill="(#[0-9a-fA-F]+)" x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="[\d.]+" '
    r'shape-rendering="crispEdges"/>'
)
_RENDER_ID = re.compile(r"terminal-\d+-")
#: a number as the console writes one: sign, digits with separators, decimals, exponent, unit
_NUMBER = re.compile(r"[-+−]?\d[\d,._:]*(?:[eE][-+]?\d+)?(?:%|[kKMGT](?![a-z])|[smhd](?![a-z]))?")
#: marks whose position, height or colour comes from a value: a chart's braille dots and points,
#: a sparkline's or a progress bar's blocks (the full block too: a sparkline at its top is all █)
_MARKS = re.compile(r"[\u2800-\u28ff▁▂▃▄▅▆▇█•∙]")
_BLANKS = re.compile(r"\s+")
#: border, rule and box glyphs (box drawing, the remaining block elements): the frame of a screen
_FRAME = re.compile(r"[\u2500-\u259f▔▏]+")
#: Rich draws line n's text at y = 20 + n * 24.4 and its background from y = 1.5 + n * 24.4
_LINE_H = 24.4


@dataclass(frozen=True)
class Layout:
    """What is compared. `lines`: one entry per terminal line (styled words and background colours),
    the form a person reads in a mismatch report. The comparison itself uses two views of it that a
    longer number cannot disturb: `skeleton`, per line the background colours and the styled border
    and rule glyphs, and `words`, every styled word in reading order. A paragraph that wraps one
    word later because a number grew a digit keeps both; a missing panel, a renamed title, a colour
    change or a table with another number of rows changes at least one."""

    lines: tuple[str, ...]
    skeleton: tuple[str, ...]
    words: tuple[str, ...]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and (self.skeleton, self.words) == (other.skeleton, other.words)

    def __hash__(self) -> int:
        return hash((self.skeleton, self.words))


def strip_render_ids(svg: str) -> str:
    return _RENDER_ID.sub("terminal-", svg)


def normalise_svg(svg: str) -> str:
    """The file to store: render ids dropped, every digit inside a text node replaced by `0`."""
    svg = strip_render_ids(svg)

    def zero_digits(m: re.Match[str]) -> str:
        # a character reference (`&#160;` a blank, `&#x27;` a quote) keeps its digits
        body = re.sub(r"&#?\w+;|\d", lambda d: d.group(0) if len(d.group(0)) > 1 else "0", m.group(2))
        return m.group(1) + body + m.group(3)

    return re.sub(r"(<text [^>]*>)(.*?)(</text>)", zero_digits, svg)


def _normal_text(text: str) -> str:
    text = html.unescape(text).replace("\xa0", " ")
    text = _MARKS.sub(" ", text)
    text = _NUMBER.sub("0", text)
    return _BLANKS.sub(" ", text)


def layout(svg: str) -> Layout:
    """The layout of a Rich SVG screenshot (see the module docstring)."""
    styles = {n: _BLANKS.sub(" ", s) for n, s in _STYLE.findall(svg)}
    texts: dict[int, list[tuple[float, str, str]]] = {}
    for cls, x, line, raw in _TEXT.findall(svg):
        texts.setdefault(int(line), []).append((float(x), styles.get(cls, f"r{cls}"), raw))
    backs: dict[int, list[tuple[float, str]]] = {}
    for fill, x, y in _RECT.findall(svg):
        backs.setdefault(round((float(y) - 1.5) / _LINE_H), []).append((float(x), fill.lower()))
    n_lines = max([*texts, *backs], default=-1) + 1
    # which lines a curve or a sparkline crosses follows its values; that something is drawn does not
    marks = any(_MARKS.search(html.unescape(raw)) for line in texts.values() for _, _, raw in line)
    out = [f"marks drawn: {'yes' if marks else 'no'}"]
    skeleton, words_all = [out[0]], []
    for n in range(n_lines):
        pieces: list[tuple[str, str]] = []
        for _, style, raw in sorted(texts.get(n, [])):
            if pieces and pieces[-1][0] == style:
                pieces[-1] = (style, pieces[-1][1] + raw)
            else:
                pieces.append((style, raw))
        words, frame = [], []
        for style, raw in pieces:
            text = _normal_text(raw).strip()
            if text:
                words.append(f"[{style}]{text}")
                words_all.extend(f"[{style}]{w}" for w in _FRAME.sub(" ", text).split())
                glyphs = "".join(_FRAME.findall(text))
                if glyphs:
                    frame.append(f"[{style}]{glyphs}")
        fills: list[str] = []
        for _, fill in sorted(backs.get(n, [])):
            if not fills or fills[-1] != fill:
                fills.append(fill)
        out.append(f"{n:02d} {' '.join(words)}  || {' '.join(fills)}")
        skeleton.append(f"{n:02d} {' '.join(frame)}  || {' '.join(fills)}")
    return Layout(tuple(out), tuple(skeleton), tuple(words_all))


class SnapshotMismatch(AssertionError):
    """A view's normalised SVG differs from its stored snapshot (the message names both files)."""


def check_snapshot(svg: str, stored: Path, update: bool, report_dir: Path) -> None:
    """Compare `svg`'s layout with the snapshot at `stored`; with `update`, write it instead. A
    missing snapshot fails (CI must never pass by writing the snapshot it compares with)."""
    if update:
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(normalise_svg(svg))
        return
    if not stored.exists():
        raise SnapshotMismatch(
            f"no snapshot at {stored}: create it with `pytest {_test_hint(stored)} --snapshot-update`"
        )
    want, got = layout(stored.read_text()), layout(svg)
    if want == got:
        return
    report_dir.mkdir(parents=True, exist_ok=True)
    actual = report_dir / f"{stored.stem}.actual.svg"
    actual.write_text(svg)
    (report_dir / f"{stored.stem}.actual-normalised.svg").write_text(normalise_svg(svg))
    diff = "".join(
        difflib.unified_diff(want.text().splitlines(True), got.text().splitlines(True), "snapshot", "actual", n=1)
    )
    report = report_dir / f"{stored.stem}.layout.diff"
    report.write_text(diff)
    shown = "\n".join(diff.splitlines()[:40])
    raise SnapshotMismatch(
        f"the screen's layout differs from {stored}\n"
        f"  actual screenshot: {actual}\n  layout diff: {report}\n"
        f"(after an intended change: pytest {_test_hint(stored)} --snapshot-update)\n{shown}"
    )


def _test_hint(stored: Path) -> str:
    return f"tests/tui/test_{stored.parent.name}.py"
