"""Console widgets: metric sparkline rows and panels, host bar, log and event views."""


def set_text(widget, content) -> None:
    """Update a Static only when its content changed: an update re-lays out and repaints, and
    pollers deliver mostly-unchanged data every second."""
    if getattr(widget, "_ztb_last", None) != content:
        widget._ztb_last = content
        widget.update(content)


def set_display(widget, shown: bool) -> None:
    if widget.display != shown:
        widget.display = shown
