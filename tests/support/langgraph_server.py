"""Run `langgraph dev` (langgraph-cli[inmem]) on a free loopback port for a test session, in a
private copy of its config's directory."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import httpx

from tests.support.node_idp import free_port


def langgraph_cli() -> str | None:
    exe = pathlib.Path(sys.executable).with_name("langgraph")
    return str(exe) if exe.exists() else shutil.which("langgraph")


class LangGraphDevServer:
    """`langgraph dev --no-browser --no-reload` for ``config``; ``url`` once ready."""

    def __init__(self, config: pathlib.Path, *, env: dict[str, str] | None = None, timeout: float = 180) -> None:
        cli = langgraph_cli()
        if cli is None:
            raise RuntimeError("langgraph CLI not installed (pip install 'langgraph-cli[inmem]')")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A copy of the config's directory: `langgraph dev` keeps its state in `.langgraph_api`
        # of its working directory, so servers for one directory (on two xdist workers) would
        # share it.
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="langgraph-dev-"))
        shutil.copytree(config.parent, self.workdir, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".langgraph_api", "__pycache__"))
        config = self.workdir / config.name
        self.logfile = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [cli, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(self.port),
             "--config", str(config), "--server-log-level", "WARNING"],
            cwd=self.workdir, env={**os.environ, **(env or {}), "LANGSMITH_TRACING": "false",
                                    "LANGGRAPH_NO_ANALYTICS": "1"},
            stdout=self.logfile, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"langgraph dev did not become ready:\n{self.log()}")

    def log(self) -> str:
        self.logfile.flush()
        return pathlib.Path(self.logfile.name).read_text()[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
        self.logfile.close()
        pathlib.Path(self.logfile.name).unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
