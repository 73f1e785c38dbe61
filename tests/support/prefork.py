"""A pre-imported Python for the tests that run a script or module to check what it prints.

A fresh interpreter that imports LangChain, LangGraph and the toolkit costs 1.5-2.5 s of CPU
before the script does anything; the examples, the doc snippets and the demo are run dozens
of times per session. :class:`Zygote` pays that once: a helper process (one per test
session, i.e. per xdist worker) imports the heavy modules (:data:`PRELOAD`, and later what
:meth:`Zygote.preload` asks for), starting no thread, then for each run forks a child that
is set up as ``python SCRIPT ARGS`` (or ``python -m MODULE ARGS``) would be: ``sys.argv``,
``sys.path[0]``, the environment, the working directory, file descriptors 0/1/2 (where
``sys.std*`` write). The child runs the script as ``__main__``, then shuts down as the
interpreter does (non-daemon threads joined, ``atexit`` handlers, streams flushed) and
exits with the script's status.

What it does not give: interpreter flags (``-X``, ``-W``), a fresh import of what is preloaded
(a run's ``PYTHONPATH`` is put on ``sys.path``, but the preloaded modules stay as imported),
and anything about process start-up itself. Tests of start-up time, signals, console
scripts' own entry or several processes at once keep real subprocesses. A program that
starts Python itself (Jupyter's kernels, the MCP conformance suite's client) runs
``python tests/support/prefork.py SOCKET ARGS`` instead (:func:`proxy`).

    >>> zygote = Zygote(preload=["json"])
    >>> done = zygote.run(["-m", "this"])
    >>> done.returncode, done.stdout.splitlines()[0], done.stderr
    (0, 'The Zen of Python, by Tim Peters', '')
    >>> zygote.close()

Wire protocol (one Unix socket connection per run): the test sends one JSON line (argv,
cwd, env) with the run's stdin/stdout/stderr descriptors attached (``SCM_RIGHTS``); the
zygote forks a waiter, which forks the runner and answers ``pid N`` then ``exit STATUS``.
The waiter and the zygote reap their children, so the runs' CPU is accounted to the test
process once the zygote is closed and reaped. The zygote's stdin carries the modules to
import later (a line each request, answered ``ready`` on its stdout); its end stops it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

# What the examples, the demo, the doc snippets and the notebooks' kernels import (the rest
# is cheap or their own); ``pkg.*`` is every module of the package but its ``__main__``.
PRELOAD = (
    "langchain_agent_auth.*", "httpx", "httpcore", "h11", "anyio.streams.memory", "anyio.streams.tls",
    "anyio.lowlevel", "authlib.oidc.core", "uvicorn", "uvicorn.lifespan.on", "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl", "starlette.applications",
    "html.parser", "xml.dom.minidom", "prompt_toolkit", "typer", "wcwidth", "langsmith", "langchain_core.tools",
    "langchain_core.language_models.fake_chat_models", "langchain_core.callbacks", "langchain_core.tracers.context",
    "langchain_core.tracers.stdout", "langchain.agents", "langchain.chat_models", "langgraph.graph",
    "langgraph.prebuilt", "langgraph.types", "langgraph.checkpoint.memory", "langgraph.checkpoint.sqlite",
    "langgraph.store.memory", "langgraph.store.sqlite", "langgraph.checkpoint.postgres", "langgraph.store.postgres",
    "ipykernel.kernelapp", "ipykernel.ipkernel",
)
_BUSY = "the zygote started a thread while importing {}: forking it would not be safe"


class Forked:
    """One run in a forked child: ``pid`` (the run's own), ``args``, ``returncode``
    (``None`` while it runs), ``communicate()``, ``poll()``, ``wait()``, ``send_signal()``,
    ``terminate()``, ``kill()`` like ``subprocess.Popen`` with ``text=True`` and captured
    output."""

    def __init__(self, args: list[str], conn: socket.socket, out: Any, err: Any) -> None:
        self.args, self._conn, self._out, self._err = args, conn, out, err
        self._reader = conn.makefile("r", encoding="utf-8")
        self.pid = int(self._reader.readline().split()[1])
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._conn], [], [], 0)[0]:
            self.wait()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._conn], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
            line = self._reader.readline()
            if not line.startswith("exit "):
                raise RuntimeError(f"the zygote lost the run {self.args}: {line!r}")
            self.returncode = int(line.split()[1])
            self._reader.close()
            self._conn.close()
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        texts = []
        for file in (self._out, self._err):
            file.seek(0)
            texts.append(file.read().decode("utf-8", "replace"))
            file.close()
        return texts[0], texts[1]

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The helper process; :meth:`start` / :meth:`run` a script in a forked child of it."""

    def __init__(self, preload: Sequence[str] = PRELOAD) -> None:
        self._dir = tempfile.mkdtemp(prefix="zygote-")
        self.path = os.path.join(self._dir, "socket")
        self._proc = subprocess.Popen([sys.executable, "-c", "from tests.support.prefork import serve; serve()",
                                       self.path, *preload], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      cwd=pathlib.Path(__file__).resolve().parents[2])
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline().decode()
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError(f"the zygote did not start: {ready}")

    def preload(self, *names: str) -> None:
        """Import ``names`` (``pkg.*`` as in :data:`PRELOAD`) in the helper as well, for the
        runs started from now on: what only some tests' scripts import (the MCP SDK, for the
        conformance client) is paid for once, and only by the sessions that run them."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write((" ".join(names) + "\n").encode())
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().decode()
        if answer.strip() != "ready":
            raise RuntimeError(f"the zygote failed importing {names}: {answer!r}")

    def start(self, args: Sequence[str | os.PathLike[str]], *, cwd: str | os.PathLike[str] | None = None,
              env: dict[str, str] | None = None, stdin: int | None = None) -> Forked:
        """Run ``python ARGS`` (``SCRIPT ...`` or ``-m MODULE ...``) in a forked child, stdin
        ``/dev/null`` unless a descriptor is given; its output goes to temporary files."""
        argv = [os.fspath(a) for a in args]
        # the run's output, read once it exited (the Forked owns and closes them)
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        with open(os.devnull, "rb") as devnull:
            fds = [devnull.fileno() if stdin is None else stdin, out.fileno(), err.fileno()]
            conn = _request(self.path, argv, os.path.abspath(cwd or os.getcwd()),
                            dict(os.environ if env is None else env), fds)
        return Forked([sys.executable, *argv], conn, out, err)

    def run(self, args: Sequence[str | os.PathLike[str]], *, timeout: float = 180,
            **options: Any) -> subprocess.CompletedProcess[str]:
        """:meth:`start`, then wait: what ``subprocess.run(..., capture_output=True,
        text=True, timeout=timeout)`` gives (the child killed on a timeout)."""
        child = self.start(args, **options)
        try:
            out, err = child.communicate(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
        return subprocess.CompletedProcess(child.args, child.returncode, out, err)

    def close(self) -> None:
        """Stop the helper once its runs are done, and reap it."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self._dir)


def _request(path: str, argv: list[str], cwd: str, env: dict[str, str], fds: list[int]) -> socket.socket:
    """Ask the zygote listening on ``path`` for a run; the connection its answers come on."""
    if not argv or (argv[0].startswith("-") and (argv[0] != "-m" or len(argv) < 2)):
        raise ValueError(f"a run is ['SCRIPT', ...] or ['-m', 'MODULE', ...], not {argv}")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    socket.send_fds(conn, [json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode() + b"\n"], fds)
    return conn


def proxy(path: str, argv: list[str]) -> int:
    """Stand in for ``python ARGV`` where a program starts Python itself (Jupyter starting a
    kernel): the run is forked by the zygote on ``path`` with this process's stdin, stdout,
    stderr, environment and working directory; SIGINT, SIGTERM and SIGHUP are passed on; the
    exit status is the run's (a killed proxy takes the run with it)."""
    conn = _request(path, argv, os.getcwd(), dict(os.environ), [0, 1, 2])
    answers = conn.makefile("r", encoding="utf-8")
    pid = int(answers.readline().split()[1])

    def pass_on(signum: int, _: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, pass_on)
    line = answers.readline()
    code = int(line.split()[1]) if line.startswith("exit ") else 1
    if code < 0:  # died of a signal: so does the proxy
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


# --------------------------------------------------------------------------- the helper process


def serve() -> None:
    """The zygote's loop: ``argv`` is the socket path and the modules to preload; each line
    on stdin names more modules to import (answered ``ready``), its end stops the zygote."""
    path, *preload = sys.argv[1:]
    sys.path[0] = os.getcwd()
    _import(preload)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    _answer("ready")
    waiters: set[int] = set()
    stopping, pending = False, b""
    while not stopping or waiters:
        readable = select.select([listener] + ([] if stopping else [sys.stdin]), [], [], 0.1)[0]
        if sys.stdin in readable:
            data = os.read(sys.stdin.fileno(), 4096)
            stopping = not data
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:  # imported before the next accept: every later run has them
                _import(line.decode().split())
                _answer("ready")
        if listener in readable:
            conn, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                listener.close()
                _wait_for_run(conn)
            waiters.add(pid)
            conn.close()
        for pid in list(waiters):
            if os.waitpid(pid, os.WNOHANG)[0]:
                waiters.discard(pid)


def _import(names: Sequence[str]) -> None:
    """Import the modules (those missing are skipped), making sure none started a thread."""
    for name in _expand(names):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
        if threading.active_count() != 1:
            raise SystemExit(_BUSY.format(name))
    gc.collect()
    gc.freeze()  # the preloaded objects: out of every run's collections, and their pages stay shared


def _answer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _expand(names: Sequence[str]) -> list[str]:
    """The module names, ``pkg.*`` replaced by every module of ``pkg`` but ``__main__``."""
    import pkgutil

    out = []
    for name in names:
        if not name.endswith(".*"):
            out.append(name)
            continue
        package = importlib.import_module(name[:-2])
        out += [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
                if not info.name.endswith(".__main__")]
    return out


def _wait_for_run(conn: socket.socket) -> None:
    """In the waiter: fork the runner, report its pid and exit status, then exit."""
    try:
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        while not message.endswith(b"\n"):
            message += conn.recv(1 << 20)
        runner = os.fork()
        if runner == 0:
            conn.close()
            _run(json.loads(message), fds)
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(f"pid {runner}\n".encode())
        except OSError:  # the other side is gone already
            os.kill(runner, signal.SIGKILL)
            os.waitpid(runner, 0)
            return
        status = _outlive(runner, conn)
        conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
    finally:
        os._exit(0)


def _outlive(runner: int, conn: socket.socket) -> int:
    """The runner's wait status; it is killed if the other side hangs up first (the test or
    the proxy died: nothing would read its answer)."""
    exited = os.pidfd_open(runner)
    try:
        while exited not in select.select([exited, conn], [], [])[0]:
            if not _receive(conn):
                os.kill(runner, signal.SIGKILL)
                break
        return os.waitpid(runner, 0)[1]
    finally:
        os.close(exited)


def _receive(conn: socket.socket) -> bytes:
    """What came on ``conn`` (nothing is expected), ``b""`` once the other side hung up."""
    try:
        return conn.recv(4096)
    except OSError:  # reset by a peer that died
        return b""


def _run(request: dict[str, Any], fds: list[int]) -> None:
    """In the runner: become ``python ARGV`` and never return."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _forget_environment()
        if os.environ.get("PYTHONUNBUFFERED"):
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(write_through=True)  # type: ignore[union-attr]
        code = _main(request["argv"])
        threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter does at exit
    finally:
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _forget_environment() -> None:
    """Drop what a preloaded module cached of the zygote's environment (LangSmith's settings
    reader), so the run's own environment is read."""
    utils = sys.modules.get("langsmith.utils")
    if utils is not None:
        utils.get_env_var.cache_clear()


_ZYGOTE_PYTHONPATH = os.environ.get("PYTHONPATH", "")


def _set_path(first: str) -> None:
    """``sys.path`` as this run's interpreter would start with: ``first``, the run's
    ``PYTHONPATH``, then the installation's entries (the zygote's own PYTHONPATH left out)."""
    own = set(filter(None, _ZYGOTE_PYTHONPATH.split(os.pathsep)))
    rest = [p for p in sys.path[1:] if p not in own]
    sys.path[:] = [first, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), *rest]


def _run_script(path: str) -> None:
    """Run the file as a new ``__main__`` module: ``sys.argv[0]`` stays as given and
    ``__file__`` is absolute, as ``python SCRIPT`` has them (``runpy.run_path`` would
    change ``sys.argv[0]``)."""
    import importlib.machinery
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    exec(code, main.__dict__)


def _main(argv: list[str]) -> int:
    """Run the script or module as ``__main__``; its exit status as the interpreter gives it."""
    import runpy
    import traceback

    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            _set_path(os.getcwd())
            runpy._run_module_as_main(argv[1])  # type: ignore[attr-defined]  # what python -m runs
        else:
            sys.argv = list(argv)
            _set_path(os.path.dirname(os.path.abspath(argv[0])))
            _run_script(os.path.abspath(argv[0]))
        return 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:
        traceback.print_exc()
        return 1


if __name__ == "__main__":  # python tests/support/prefork.py SOCKET ARGV...: see proxy()
    raise SystemExit(proxy(sys.argv[1], sys.argv[2:]))
