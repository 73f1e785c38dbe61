"""A throwaway PostgreSQL cluster for the test session (Debian's ``postgresql`` package).

``initdb`` in a temp dir, the server on a free loopback port with its unix socket in the same
dir, ``trust`` auth for the one local user, stopped and deleted at the end. As root (CI
containers) it runs as the ``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import shutil
import socket
import subprocess
from collections.abc import Sequence


def pg_bin() -> pathlib.Path | None:
    """The directory of ``initdb`` / ``pg_ctl`` (newest Debian version, else ``$PATH``)."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return pathlib.Path(d)
    found = shutil.which("initdb")
    return pathlib.Path(found).resolve().parent if found else None


def postgres_available() -> str | None:
    """Why a cluster cannot be started here (``None``: it can)."""
    if pg_bin() is None:
        return "PostgreSQL binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser (PostgreSQL refuses to run as root)"
    try:
        import langgraph.store.postgres  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg / langgraph-checkpoint-postgres not installed (pip install 'langchain-agent-auth[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One cluster; ``dsn`` connects over loopback TCP as the superuser ``agent_auth``."""

    user = "agent_auth"

    def __init__(self, root: pathlib.Path) -> None:
        bindir = pg_bin()
        assert bindir is not None
        self.bin = bindir
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(root, "postgres", "postgres")
        self._run(["initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                   "--no-sync", "--locale=C"])
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._run(["pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"])
        self.dsn = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: Sequence[str]) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[-800:]} {log[-800:]}")

    def database(self, name: str) -> str:
        """Create database ``name``; its DSN."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)
