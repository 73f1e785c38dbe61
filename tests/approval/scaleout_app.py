"""The scale-out test's graph and resumer worker: threads on one PostgreSQL database
(``PostgresStore`` + ``PostgresSaver``), each paused on a CIBA approval at the local provider.

``python -m tests.approval.scaleout_app FOLDER [DIE_AFTER]`` runs one resumer until
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
import sys
import time
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

from langchain_agent_auth.approval import ApprovalResumer, ApprovalSource, CIBAApprover, approval_guards
from langchain_agent_auth.crypto import Keyring
from langchain_agent_auth.guards import guarded_tool_node
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


def approver(cfg: dict[str, Any]) -> CIBAApprover:
    client = OAuthClient(cfg["issuer"], cfg["client_id"], cfg["client_secret"])
    return CIBAApprover(client, scope="openid", keyring=Keyring.from_file(cfg["keys"], create=False))


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
        while not (folder / "stop").exists():
            if not resumer._more(resumer.run_once()):
                time.sleep(0.2)


if __name__ == "__main__":
    main()
