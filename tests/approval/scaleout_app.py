"""The scale-out test's (and benchmark's) graph and resumer worker: threads on one PostgreSQL
database (``PostgresStore`` + ``PostgresSaver``), each paused on a CIBA approval at the local
provider.

``python -m tests.approval.scaleout_app FOLDER [DIE_AFTER]`` runs one resumer (settings in
``FOLDER/config.json``; with ``"go": true`` it waits for ``FOLDER/go`` first) until
``FOLDER/stop`` exists. Every tool run appends the thread id to ``FOLDER/runs.txt``; every
resume of a thread appends it to ``FOLDER/resumes.txt`` (small appends to one file from
several processes do not interleave). With ``DIE_AFTER`` the worker stops dead at that many
checks, holding its claims (it writes ``FOLDER/dying`` and sleeps until it is killed): the
kill then lands between two steps, never inside a tool run.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

from langchain_agent_auth.approval import ApprovalResumer, ApprovalSource, CIBAApprover, approval_guards
from langchain_agent_auth.core.crypto import Keyring
from langchain_agent_auth.core.guards import guarded_tool_node
from langchain_agent_auth.identity import UserIdentity
from langchain_agent_auth.oauth import OAuthClient
from tests.approval.helpers import State

PER_USER = 10  # pending approvals per provider user (the guard and the provider cap them)


def _append(path: pathlib.Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def user_for(i: int) -> str:
    return f"scale{i // PER_USER}"


def configure(folder: pathlib.Path, idp: Any, dsn: str, keys: pathlib.Path, *, lease: float = 5.0,
              batch: int = 25, go: bool = False) -> dict[str, Any]:
    """Write ``FOLDER/config.json`` for workers on ``dsn`` polling ``idp``."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"dsn": dsn, "issuer": idp.issuer, "client_id": idp.client_id, "client_secret": idp.client_secret,
           "keys": str(keys), "lease": lease, "batch": batch, "go": go}
    (folder / "config.json").write_text(json.dumps(cfg))
    return cfg


def add_users(idp: Any, first: int, end: int) -> None:
    """Provider users for threads ``first..end-1``."""
    for u in range(first // PER_USER, (end + PER_USER - 1) // PER_USER):
        idp.add_user(f"scale{u}", "pw-scale")


def seed(folder: pathlib.Path, cfg: dict[str, Any], first: int, end: int) -> None:
    """Run threads ``t{first}..t{end-1}`` to their approval pause (tool runs counted in ``folder``)."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(cfg["dsn"]) as store, PostgresSaver.from_conn_string(cfg["dsn"]) as saver:
        store.setup()
        saver.setup()
        graph = build(folder, approver(cfg), store, saver)
        for i in range(first, end):
            pause(graph, i)


def start_workers(folder: pathlib.Path, count: int, die_after: int | None = None) -> list[subprocess.Popen[str]]:
    """``count`` resumer processes on ``folder``'s config (the first dies after ``die_after`` checks)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "tests.approval.scaleout_app", str(folder)]
    return [subprocess.Popen(argv + ([str(die_after)] if w == 0 and die_after is not None else []), cwd=root,
                             env=env, stderr=subprocess.PIPE, text=True) for w in range(count)]


def stop_workers(folder: pathlib.Path, workers: list[subprocess.Popen[str]]) -> None:
    (folder / "stop").write_text("")
    for w in workers:
        try:
            w.wait(60)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
        if w.stderr is not None:
            w.stderr.close()


def scenario(folder: pathlib.Path, idp: Any, n: int, *, pending_share: int = 20, timeout: float = 240
             ) -> dict[str, Any]:
    """Approve all but 1/``pending_share`` of the ``n`` seeded requests, start 4 resumers (the
    first freezes at its ``n // 8``-th check, about halfway through its share, holding its
    claims), SIGKILL it, approve the rest, wait for every tool run. The scale-out test and
    benchmarks/resumer_scaleout.py run it."""
    requests = idp.pending_approvals()
    assert len(requests) == n
    pending = max(1, n // pending_share)
    for r in requests[pending:]:
        idp.approve(r["id"])
    idp.reset_stats()
    started = time.monotonic()
    deadline = started + timeout
    die_after = max(10, n // 8)
    workers = start_workers(folder, 4, die_after=die_after)
    try:
        while not (folder / "dying").exists():
            assert workers[0].poll() is None, workers[0].stderr.read() if workers[0].stderr else ""
            assert time.monotonic() < deadline, f"the first worker never reached check {die_after}"
            time.sleep(0.1)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(30)
        killed_at = time.monotonic() - started
        held = json.loads((folder / "dying").read_text())
        done_at_kill = len(lines(folder / "runs.txt"))
        for r in requests[:pending]:  # the last answers come after the kill
            idp.approve(r["id"])
        while len(set(lines(folder / "runs.txt"))) < n and time.monotonic() < deadline:
            for w in workers[1:]:
                assert w.poll() is None, w.stderr.read() if w.stderr else ""
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        stop_workers(folder, workers)
    ciba = idp.stats().get("ciba", {})
    return {"held": held, "done_at_kill": done_at_kill, "killed_at": killed_at, "elapsed": elapsed,
            "runs": Counter(lines(folder / "runs.txt")), "resumes": Counter(lines(folder / "resumes.txt")),
            "slow_down": ciba.get("slow_down", 0), "tokens": ciba.get("tokens", 0),
            "polls": ciba.get("authorization_pending", 0) + ciba.get("tokens", 0) + ciba.get("slow_down", 0)}


def approver(cfg: dict[str, Any]) -> CIBAApprover:
    client = OAuthClient(cfg["issuer"], cfg["client_id"], cfg["client_secret"])
    # The provider's longest expiry: the benchmark's rounds start from snapshots taken minutes earlier.
    return CIBAApprover(client, scope="openid", requested_expiry=3600,
                        keyring=Keyring.from_file(cfg["keys"], create=False))


def build(folder: pathlib.Path, ciba: CIBAApprover, store: Any, saver: Any) -> Any:
    """START -> tools -> END; the tool call comes in as input and ``pay`` needs approval."""

    @tool
    def pay(to: str) -> str:
        """Pay someone."""
        _append(folder / "runs.txt", to)
        return f"paid {to}"

    return (StateGraph(State).add_node("tools", guarded_tool_node([pay], *approval_guards({"pay": ciba})))
            .add_edge(START, "tools").add_edge("tools", END).compile(checkpointer=saver, store=store))


def pause(graph: Any, i: int) -> None:
    """Start thread ``t{i}``: it pauses on its approval."""
    call = AIMessage("", tool_calls=[{"name": "pay", "args": {"to": f"t{i}"}, "id": f"c{i}", "type": "tool_call"}])
    out = graph.invoke({"messages": [call]}, {"configurable": {"thread_id": f"t{i}"}},
                       context={"user": UserIdentity(subject=user_for(i))})
    assert out["__interrupt__"][0].value["type"] == "approval_pending", out


class CountingResumer(ApprovalResumer):
    def __init__(self, folder: pathlib.Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder

    def _resume(self, item: Any, resume: dict[str, Any]) -> None:
        _append(self.folder / "resumes.txt", item.thread_id)
        super()._resume(item, resume)


class DyingSource(ApprovalSource):
    """Checks ``die_after`` items, then hangs holding its claims until SIGKILL."""

    def __init__(self, folder: pathlib.Path, die_after: int, *args: Any) -> None:
        super().__init__(*args)
        self.folder, self.left = folder, die_after

    def due(self, now: float, limit: int) -> Any:
        self.held: list[str] = []  # claimed in this pass, not resumed yet
        return super().due(now, limit)

    def check(self, item: Any, now: float) -> Any:
        self.left -= 1
        if self.left < 0:
            self.held.append(item.thread_id)
            (self.folder / "dying").write_text(json.dumps(self.held))
            time.sleep(3600)
        checked = super().check(item, now)
        if checked is not None:
            self.held.append(item.thread_id)
        return checked


def main() -> None:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    folder = pathlib.Path(sys.argv[1])
    die_after = int(sys.argv[2]) if len(sys.argv) > 2 else None
    cfg = json.loads((folder / "config.json").read_text())
    ciba = approver(cfg)
    with PostgresStore.from_conn_string(cfg["dsn"]) as store, PostgresSaver.from_conn_string(cfg["dsn"]) as saver:
        graph = build(folder, ciba, store, saver)
        source = (DyingSource(folder, die_after, [ciba], store) if die_after is not None
                  else ApprovalSource([ciba], store))
        resumer = CountingResumer(folder, graph, sources=[source], lease=cfg["lease"], batch_size=cfg["batch"],
                                  tick=0.2, retry_delay=cfg["lease"])
        _append(folder / "started.txt", str(os.getpid()))
        while cfg.get("go") and not (folder / "go").exists():
            time.sleep(0.05)
        while not (folder / "stop").exists():
            if not resumer._more(resumer.run_once()):
                time.sleep(0.2)


if __name__ == "__main__":
    main()
