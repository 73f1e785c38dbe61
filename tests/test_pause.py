"""The pause protocol: a wrong-shape resume value is refused and the pause stays answerable."""

from __future__ import annotations

from typing import Literal

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from langchain_agent_auth.core.errors import ResumeValueError
from langchain_agent_auth.core.pause import PausePayload, ResumeModel, pause, validate_resume


class Answer(ResumeModel):
    ok: bool


class Ask(PausePayload):
    type: Literal["ask"] = "ask"
    resume_model = Answer


class State(TypedDict, total=False):
    result: str


def node(state: State) -> State:
    answer = pause(Ask(tool_call_id="c1"))
    return {"result": f"ok={answer.ok}"}


def test_payload_carries_type_version_and_response_schema():
    data = Ask(tool_call_id="c1").to_interrupt()
    assert data["type"] == "ask" and data["version"] == 1
    assert data["response_schema"]["properties"]["ok"]["type"] == "boolean"


def test_wrong_shape_is_refused_and_the_pause_can_be_answered_again():
    graph = StateGraph(State).add_node("n", node).add_edge(START, "n").compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    first = graph.invoke({}, cfg)
    assert first["__interrupt__"][0].value["type"] == "ask"
    with pytest.raises(Exception):  # noqa: B017 - LangGraph's invalid-resume error
        graph.invoke(Command(resume={"ok": "not a bool", "extra": 1}), cfg)
    assert graph.get_state(cfg).interrupts, "the pause must still be there"
    assert graph.invoke(Command(resume={"ok": True}), cfg)["result"] == "ok=True"


def test_validate_resume_names_the_bad_fields():
    with pytest.raises(ResumeValueError, match="ok"):
        validate_resume({"ok": [1]}, Answer)


def test_stop_run_marks_the_error_for_langgraphs_public_is_invalid_resume():
    from langgraph.errors import is_invalid_resume

    from langchain_agent_auth.core.pause import stop_run

    err = stop_run(ResumeValueError("not yours"))
    assert is_invalid_resume(err) and isinstance(err, ResumeValueError)
    assert not is_invalid_resume(ResumeValueError("plain"))


def test_on_pause_runs_only_when_the_run_really_pauses():
    seen: list[str] = []

    def pausing(state: State) -> State:
        answer = pause(Ask(tool_call_id="c1"), on_pause=lambda: seen.append("paused"))
        return {"result": f"ok={answer.ok}"}

    graph = StateGraph(State).add_node("n", pausing).add_edge(START, "n").compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    graph.invoke({}, cfg)
    assert seen == ["paused"]
    assert graph.invoke(Command(resume={"ok": True}), cfg)["result"] == "ok=True"
    assert seen == ["paused"], "a pause that returns its answer sends no progress"


def test_replay_reenters_earlier_pauses_in_order_then_counts_a_new_one():
    from langchain_agent_auth.core.pause import Replay

    replay, made = Replay(), 2
    assert replay.due(made) and not replay.is_last(made)
    assert replay.enter() == 0 and replay.is_last(made)
    assert replay.enter() == 1 and not replay.due(made)
    assert replay.enter() == 2  # a new pause: index 2, entered in this run
