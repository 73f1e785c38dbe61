"""tests/support/prefork.py: a forked run looks to its script like ``python SCRIPT`` (argv,
sys.path[0], cwd, environment, stdio, exit status, interpreter shutdown), and it ends when
asked to (a timeout kills it; the proxy passes signals on and dies with it)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.support import prefork
from tests.support.prefork import Zygote

SCRIPT = textwrap.dedent("""
    import atexit, json, os, sys, threading, time
    atexit.register(lambda: print("atexit ran", flush=True))
    def late():
        time.sleep(0.2)
        print("thread joined", flush=True)
    threading.Thread(target=late).start()
    print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "name": __name__, "file": __file__,
                      "env": os.environ.get("PREFORK_TEST"), "stdin": sys.stdin.read(),
                      "path1": sys.path[1]}))
    print("to stderr", file=sys.stderr)
    raise SystemExit(int(os.environ.get("PREFORK_EXIT", "0")))
""")


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    started = Zygote(preload=["json"])  # what is preloaded does not change what a run sees
    yield started
    started.close()


def test_a_run_sees_what_python_script_would_see(zygote: Zygote, tmp_path: pathlib.Path) -> None:
    import json

    script = tmp_path / "bin" / "script.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    env = {**os.environ, "PREFORK_TEST": "yes", "PREFORK_EXIT": "3", "PYTHONPATH": "/nowhere"}
    done = zygote.run(["bin/script.py", "a", "--b"], cwd=tmp_path, env=env, timeout=30)
    seen = json.loads(done.stdout.splitlines()[0])
    assert done.returncode == 3, done.stderr
    assert seen == {"argv": ["bin/script.py", "a", "--b"], "path0": str(script.parent), "cwd": str(tmp_path),
                    "name": "__main__", "file": str(script), "env": "yes", "stdin": "", "path1": "/nowhere"}
    real = subprocess.run([sys.executable, "bin/script.py", "a", "--b"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert (real.returncode, json.loads(real.stdout.splitlines()[0]), real.stdout.splitlines()[1:], real.stderr) == (
        done.returncode, seen, done.stdout.splitlines()[1:], done.stderr)  # the same as a real python
    assert done.stdout.splitlines()[1:] == ["thread joined", "atexit ran"]  # the interpreter's shutdown order
    assert done.stderr == "to stderr\n"


def test_a_module_runs_as_main_and_an_error_is_a_traceback_and_status_1(zygote: Zygote,
                                                                       tmp_path: pathlib.Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("import sys\nprint(__name__, sys.argv[1:])\nraise ValueError('boom')\n")
    done = zygote.run(["-m", "pkg.mod", "x"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert (done.returncode, done.stdout) == (1, "__main__ ['x']\n")
    assert "Traceback" in done.stderr and "ValueError: boom" in done.stderr
    with pytest.raises(ValueError):
        zygote.start(["-c", "print(1)"])


def test_a_run_past_its_timeout_is_killed(zygote: Zygote, tmp_path: pathlib.Path) -> None:
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        zygote.run([tmp_path / "slow.py"], timeout=0.5)
    assert time.monotonic() - started < 10


def test_the_proxy_passes_a_signal_on_and_exits_with_the_runs_status(zygote: Zygote,
                                                                      tmp_path: pathlib.Path) -> None:
    (tmp_path / "wait.py").write_text("import signal, sys, time\n"
                                      "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
                                      "print('ready', flush=True)\ntime.sleep(60)\n")
    proxy = subprocess.Popen([sys.executable, prefork.__file__, zygote.path, tmp_path / "wait.py"],
                             stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proxy.stdout is not None and proxy.stdout.readline() == "ready\n"  # the proxy's own stdout
    proxy.send_signal(signal.SIGTERM)
    assert proxy.wait(timeout=10) == 7


def test_a_killed_proxy_takes_its_run_with_it(zygote: Zygote, tmp_path: pathlib.Path) -> None:
    (tmp_path / "wait.py").write_text("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n")
    proxy = subprocess.Popen([sys.executable, prefork.__file__, zygote.path, tmp_path / "wait.py"],
                             stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proxy.stdout is not None
    run = int(proxy.stdout.readline())
    proxy.kill()
    proxy.wait(timeout=10)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{run}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{run}"), "the run outlived its proxy"


def test_what_is_preloaded_later_is_imported_in_every_later_run(zygote: Zygote, tmp_path: pathlib.Path) -> None:
    (tmp_path / "seen.py").write_text("import sys\nprint('colorsys' in sys.modules)\n")
    assert zygote.run([tmp_path / "seen.py"]).stdout == "False\n"
    zygote.preload("colorsys", "no_such_module_here")  # a missing module is skipped, as at start
    assert zygote.run([tmp_path / "seen.py"]).stdout == "True\n"


def test_a_proxied_run_has_the_proxys_environment_arguments_and_streams(zygote: Zygote,
                                                                         tmp_path: pathlib.Path) -> None:
    # what the MCP conformance suite relies on: its command, the server URL appended, run
    # with MCP_CONFORMANCE_* in the environment; the proxy itself started -I -S as it is there
    (tmp_path / "client.py").write_text("import os, sys\n"
                                        "print(os.environ['MCP_CONFORMANCE_SCENARIO'], sys.argv[1:], os.getcwd())\n"
                                        "print('why', file=sys.stderr)\nsys.exit(sys.stdin.read() == 'in' and 4)\n")
    done = subprocess.run([sys.executable, "-I", "-S", prefork.__file__, zygote.path, "client.py", "http://x/mcp"],
                          input="in", capture_output=True, text=True, cwd=tmp_path, timeout=30,
                          env={**os.environ, "MCP_CONFORMANCE_SCENARIO": "auth/x"})
    assert (done.returncode, done.stdout, done.stderr) == (4, f"auth/x ['http://x/mcp'] {tmp_path}\n", "why\n")
