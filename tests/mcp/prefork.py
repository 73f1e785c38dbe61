"""A pre-forked start for the MCP conformance client: the suite starts the client once per
scenario (19 times), and each start would import the ``mcp`` SDK and the toolkit again (most
of a scenario's CPU). ``serve`` imports them once and forks a fresh process per scenario;
``launch``, the suite's ``--command`` (standard library only, run with ``python -I -S``),
hands the server the scenario's arguments, its ``MCP_CONFORMANCE_*`` environment and its
standard streams, and exits with the client's status. The client runs as it does on its own
(``tests/mcp/conformance_client.py``'s ``run``), in a process of its own.

    python -m tests.mcp.prefork serve SOCKET              # the test starts it (cwd: the repo)
    python -I -S tests/mcp/prefork.py launch SOCKET URL   # what the suite runs (URL appended)
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

ENV_PREFIX = "MCP_CONFORMANCE_"
MAX_REQUEST = 1 << 20


def launch(path: str, argv: list[str]) -> int:
    """Have the server at ``path`` run the client with ``argv`` on this process's streams."""
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        socket.send_fds(conn, [b"R"], [0, 1, 2])
        conn.sendall(json.dumps({"argv": argv, "env": env}).encode() + b"\n")
        status = b""
        while chunk := conn.recv(16):  # nothing if the client died without answering
            status += chunk
    return int(status) if status.strip() else 1


def _request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """A launcher's request: its three streams, then one line of JSON."""
    _, fds, _, _ = socket.recv_fds(conn, 1, 3)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(MAX_REQUEST)
        if not chunk:
            raise ConnectionError("the launcher went away")
        data += chunk
    return json.loads(data), fds


def _child(request: dict[str, Any], fds: list[int], conn: socket.socket, run: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(120)  # a hung client must not outlive the suite's own 30 s timeout for long
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    code = 1
    try:
        code = run(request["argv"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send(str(code).encode())
        os._exit(0)


def _reap() -> None:
    """Collect finished clients (so their CPU time is counted in this process's children)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(path: str) -> None:
    """Import the client once, then fork a client per request until terminated."""
    import signal

    from tests.mcp.conformance_client import run

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = os.getppid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path + ".tmp")
        listener.listen(64)
        listener.settimeout(0.5)
        os.rename(path + ".tmp", path)  # the socket appears once it accepts
        try:
            while os.getppid() == parent:  # the test died: stop
                _reap()
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(10)
                    try:
                        request, fds = _request(conn)
                    except (OSError, ValueError):  # a launcher that went away: nothing to run
                        continue
                    if len(fds) == 3 and os.fork() == 0:
                        try:  # the child never returns into this loop
                            listener.close()
                            _child(request, fds, conn, run)
                        finally:
                            os._exit(1)
                    for fd in fds:
                        os.close(fd)
        finally:
            while True:
                try:
                    os.wait()
                except ChildProcessError:
                    break


if __name__ == "__main__":
    mode, socket_path, *rest = sys.argv[1:]
    if mode == "serve":
        serve(socket_path)
    else:
        sys.exit(launch(socket_path, [sys.argv[0], *rest]))
