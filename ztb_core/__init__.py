"""ztb core: the headless library behind the `ztb` command. Never imports the console."""

__version__ = "0.1.0"
