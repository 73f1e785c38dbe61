"""Resumers that scale out: N resumer processes over one PostgreSQL store, no coordinator.

* Unit: a claim is a lease (a dead resumer's item is taken over once it runs out); a resumer
  that listed an item before another one moved it on leaves it alone; an item a poll just
  approved is claimed in its new state, so a second resumer does not resume its thread too.
* End to end (slow): pending CIBA approvals at the local provider, 4 resumer processes on
  PostgreSQL, one frozen while it holds claims and killed with SIGKILL: every thread is
  resumed once and its tool runs once, the provider never answers ``slow_down`` and hands
  out each token once.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_agent_auth.approval import ApprovalResumer, ApprovalSource, CIBAApprover, ResumeReport
from tests.approval.fake_ciba import Clock, FakeCiba
from tests.approval.helpers import ALICE, SIDE_EFFECTS, State, calls, transfer_money

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _graph(ciba: CIBAApprover, store: InMemoryStore, n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    from langchain_agent_auth.approval import approval_guards
    from langchain_agent_auth.core.guards import guarded_tool_node

    graph = (StateGraph(State)
             .add_node("tools", guarded_tool_node([transfer_money], *approval_guards({"transfer_money": ciba})))
             .add_edge(START, "tools").add_edge("tools", END).compile(checkpointer=InMemorySaver(), store=store))
    for i in range(n):
        graph.invoke({"messages": [calls(("transfer_money", {"amount": i, "to": "Bob"}, f"c{i}"))]},
                     {"configurable": {"thread_id": f"t{i}"}}, context={"user": ALICE})
    return graph


@pytest.fixture
def paused(keyring):
    clock = Clock()
    idp = FakeCiba(clock)
    ciba = CIBAApprover(idp.oauth_client(), keyring=keyring, clock=clock)
    store = InMemoryStore()
    graph = _graph(ciba, store, 1)
    return clock, idp, ciba, store, graph


def test_a_dead_resumers_claim_runs_out_and_another_takes_the_item_over(paused):
    """Before claims were leases, a resumer killed between its claim and its check left the
    item claimed for a day: no other resumer touched it."""
    clock, idp, ciba, store, graph = paused
    idp.approve()
    clock.advance(1)
    (item,) = ApprovalSource([ciba], store).due(clock(), 10)
    dead = ApprovalResumer(graph, approvers=[ciba], clock=clock, lease=0.05)
    assert dead._claim(dead.sources[0], item)  # then it died, before its check
    alive = ApprovalResumer(graph, approvers=[ciba], clock=clock, lease=30)
    held = alive.run_once()
    assert (held.claimed_elsewhere, held.resumed_items) == (1, 0)
    time.sleep(0.1)  # the dead resumer's lease runs out (no timing in the assertion)
    report = alive.run_once()
    assert report.resumed_threads == ["t0"]
    assert len(SIDE_EFFECTS) == 1


def test_an_item_moved_on_since_it_was_listed_is_left_alone(paused):
    """A resumer that listed an item, then claimed it after another resumer checked it and
    gave its claim back, must not act on the state it listed."""
    clock, idp, ciba, store, graph = paused
    clock.advance(1)
    src = ApprovalSource([ciba], store)
    (stale,) = src.due(clock(), 10)
    other = ApprovalResumer(graph, approvers=[ciba], clock=clock)
    assert other.run_once().due == 1  # polled once: still pending, next check in 1 s
    idp.approve()
    clock.advance(5)  # the next check is due: a poll now is within the interval rules
    polls = idp.polls()
    assert src.claim(stale, "late-resumer")  # the state it names was released
    assert src.check(stale, clock()) is None
    assert idp.polls() == polls


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_approved_item_is_claimed_in_its_new_state(paused, mode):
    """A poll that finds the approval granted makes the item due at once (``next_check_at``
    = now), in a new state. The resumer that polled claims that state too, so a second
    resumer listing the item meanwhile does not resume the thread as well."""
    clock, idp, ciba, _, graph = paused
    idp.approve()
    clock.advance(1)
    first = ApprovalResumer(graph, approvers=[ciba], clock=clock)
    second = ApprovalResumer(graph, approvers=[ciba], clock=clock)
    src = first.sources[0]
    if mode == "sync":
        (item,) = src.due(clock(), 10)
        assert first._claim(src, item)
        checked = src.check(item, clock())
        assert checked is not None and checked.claim != item.claim
        assert first._claim(src, checked)
        report = second.run_once()  # lists the approved item now: claimed, it leaves it alone
    else:
        (item,) = await src.adue(clock(), 10)
        assert await first._aclaim(src, item)
        checked = await src.acheck(item, clock())
        assert checked is not None and checked.claim != item.claim
        assert await first._aclaim(src, checked)
        report = await second.arun_once()
    assert (report.due, report.claimed_elsewhere, report.resumed_items) == (1, 1, 0)
    assert SIDE_EFFECTS == []


def test_a_resumer_that_loses_the_new_state_leaves_the_thread_alone(paused):
    """The other way round: a second resumer claimed the approved state first (it listed the
    item right after the poll's write); the resumer that polled then resumes nothing."""
    clock, idp, ciba, _, graph = paused
    idp.approve()
    clock.advance(1)
    src = ApprovalSource([ciba], graph.store)

    class Racing(ApprovalSource):
        def check(self, item, now):
            checked = super().check(item, now)
            assert checked is not None and src.claim(checked, "the-other-resumer")
            return checked

    resumer = ApprovalResumer(graph, sources=[Racing([ciba], graph.store)], clock=clock)
    report = resumer.run_once()
    assert (report.ready, report.claimed_elsewhere, report.resumed_items) == (0, 1, 0)
    assert SIDE_EFFECTS == []


def test_a_full_batch_that_did_work_runs_the_next_pass_at_once(paused):
    clock, idp, ciba, _, graph = paused
    resumer = ApprovalResumer(graph, approvers=[ciba], clock=clock, batch_size=1)
    idp.approve()
    clock.advance(1)
    report = resumer.run_once()
    assert report.due == 1 and resumer._more(report)
    assert not resumer._more(resumer.run_once())  # nothing due
    assert not resumer._more(ResumeReport(due=1, errors=["check t0: VaultDecryptionError"]))  # no busy loop
    assert not resumer._more(ResumeReport(due=1, claimed_elsewhere=1))
    with pytest.raises(Exception, match="lease"):
        ApprovalResumer(graph, approvers=[ciba], lease=0)


# --------------------------------------------------------------------------- 4 processes


def _count() -> int:
    return int(os.environ.get("AGENT_AUTH_SCALEOUT_N", "400"))


@pytest.mark.slow
def test_four_resumer_processes_one_killed_resume_every_thread_once(postgres, tmp_path):
    """N pending CIBA approvals (AGENT_AUTH_SCALEOUT_N, default 400; the benchmark runs
    2,000), 4 resumer processes over one PostgreSQL database, one frozen holding its claims
    and killed with SIGKILL midway."""
    from langchain_agent_auth.core.crypto import Keyring
    from langchain_agent_auth.devserver import LocalProvider
    from tests.approval import scaleout_app as app

    n = _count()
    Keyring.from_file(tmp_path / "keys.json", create=True)
    with LocalProvider(ciba_interval=1) as idp:
        app.add_users(idp, 0, n)
        cfg = app.configure(tmp_path, idp, postgres.database(f"scaleout_{os.getpid()}"), tmp_path / "keys.json")
        app.seed(tmp_path, cfg, 0, n)
        report = app.scenario(tmp_path, idp, n)

    assert report["held"] and 0 < report["done_at_kill"] < n  # killed midway, holding claims
    assert set(report["held"]) <= set(report["resumes"])  # its claims ran out; others took its items over
    assert set(report["runs"]) == {f"t{i}" for i in range(n)}
    assert set(report["runs"].values()) == {1}  # every tool ran exactly once
    assert set(report["resumes"]) == set(report["runs"])
    assert set(report["resumes"].values()) == {1}  # every thread resumed once
    assert report["slow_down"] == 0  # no request polled sooner than its interval
    assert report["tokens"] == n  # each approval exchanged for its token once


def test_a_source_whose_claim_takes_no_ttl_still_works():
    """Sources written before claims became leases (``claim(item, owner)``) keep working."""
    from langchain_agent_auth.resume._resumer import _takes_ttl

    seen = []

    class OldSource:
        def claim(self, item, owner):
            seen.append((item, owner))
            return True

    class NewSource:
        def claim(self, item, owner, ttl=60.0):
            seen.append(ttl)
            return True

    assert not _takes_ttl(OldSource().claim) and _takes_ttl(NewSource().claim)
    assert OldSource().claim("item", "me", **({"ttl": 5} if _takes_ttl(OldSource().claim) else {}))
    assert seen == [("item", "me")]
