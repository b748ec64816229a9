"""A real PostgreSQL server for the tests, started from Debian's `postgresql` binaries in a temporary
folder on a free loopback port (`.ci/run` installs the package; elsewhere the tests that need it
skip, saying how to get it). Run as the `postgres` user when the tests run as root, because the
server refuses to run as root."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a `postgresql+psycopg2://` URL of a fresh database; stops the server and removes its files.
    Its folder is a fresh one under the system temp dir: pytest's are private to the user running it."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql; .ci/run does this)")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    workdir = Path(tempfile.mkdtemp(prefix="ztb-pg-"))
    data = workdir / "pgdata"
    data.mkdir()
    prefix: list[str] = []
    if as_root:
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    init = run(str(bindir / "initdb"), "-D", str(data), "-U", "ztb", "--auth=trust", "-E", "UTF8")
    if init.returncode != 0:
        pytest.fail(f"initdb failed: {init.stderr.strip()[-300:]}")
    start = run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(workdir / "server.log"),
        "-o",
        f"-h 127.0.0.1 -p {port} -k {workdir}",
        "-w",
        "start",
    )
    if start.returncode != 0:
        log = (workdir / "server.log").read_text(errors="replace")[-500:] if (workdir / "server.log").exists() else ""
        pytest.fail(f"PostgreSQL did not start: {start.stderr.strip()} {log}")
    try:
        deadline = time.monotonic() + 30
        while run(str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)).returncode != 0:
            if time.monotonic() > deadline:
                pytest.fail("PostgreSQL started but does not accept connections")
            time.sleep(0.2)
        made = run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ztb", "study")
        assert made.returncode == 0, made.stderr
        yield f"postgresql+psycopg2://ztb@127.0.0.1:{port}/study"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)
