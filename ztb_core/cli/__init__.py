"""The top floor: the `ztb` command line. One thin module per command group (parsing and printing),
plus the two commands that drive the others (`smoke`, `canary`). Nothing in the library imports it;
its `tui` command is the one place that loads the console, lazily."""

from .app import app, main

__all__ = ["app", "main"]
