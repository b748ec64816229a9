"""Console widgets: metric sparkline rows and panels, host bar, log and event views."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable


def set_text(widget, content, layout: bool = True) -> None:
    """Update a Static only when its content changed: an update repaints, and pollers deliver
    mostly-unchanged data every second. `layout=False` for fixed-size widgets skips the
    re-layout of the whole screen (the main CPU cost of a 1 s refresh)."""
    if getattr(widget, "_ztb_last", None) != content:
        widget._ztb_last = content
        widget.update(content, layout=layout)


def set_wrapping_text(widget, content: str) -> None:
    """`set_text` for a height-auto Static that may wrap: re-layout the screen only when the
    number of lines it needs changes (most updates only change a number in the line)."""
    width = max(1, widget.content_size.width)
    lines = -(-len(Text.from_markup(content).plain) // width) or 1
    relayout = getattr(widget, "_ztb_lines", None) != lines
    widget._ztb_lines = lines
    set_text(widget, content, layout=relayout)


def set_display(widget, shown: bool) -> None:
    if widget.display != shown:
        widget.display = shown


def cursor_key(table) -> str | None:
    """The row key under a DataTable's cursor (None for an empty table)."""
    if table.row_count == 0:
        return None
    try:
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    except Exception:  # the cursor can briefly point past a table that just shrank
        return None
    return key.value if key is not None else None


class NavTable(DataTable):
    """A DataTable with the keys people bring from htop/k9s/less: j/k down/up, g/G first/last."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
    ]

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
