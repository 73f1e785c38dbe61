"""What the approval guard checks and writes around its flow: an edited call's arguments
(the tool's schema and the identity rule), arguments an approver could misread, the sealed
result cache that keeps a re-run from repeating the side effect, and a decision as recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import ToolMessage, message_to_dict
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from langchain_agent_auth.approval._digest import args_digest
from langchain_agent_auth.approval._payloads import ApprovalResponse, refuse_resume
from langchain_agent_auth.approval._records import ApprovalRecord, ApprovalStore, audit_record
from langchain_agent_auth.core._user_fields import find_foreign
from langchain_agent_auth.core.errors import ApprovalAlreadyHandledError, UnsafeArgumentsError
from langchain_agent_auth.core.identity import UserIdentity

_MAX_CACHED_RESULT = 256_000


def _arg_checker(tool: BaseTool | None, name: str, user: UserIdentity | None = None,
                 ) -> Callable[[Mapping[str, Any]], None]:
    """Validate edited arguments against the tool's schema (the model-facing part) and the
    identity rule: an identity middleware around the approval never sees edited arguments."""

    def check(args: Mapping[str, Any]) -> None:
        fits(args)
        if user is not None:
            found = find_foreign(args, user, {"user_id": "subject"})
            if found is not None:
                raise refuse_resume(f"edited arguments name another user ({found.path}); refused")

    def fits(args: Mapping[str, Any]) -> None:
        if tool is None:
            return
        schema = tool.tool_call_schema
        if isinstance(schema, dict):
            props = set((schema.get("properties") or {}).keys())
            unknown = set(args) - props if props else set()
            missing = [k for k in schema.get("required") or () if k not in args]
            if unknown or missing:
                raise refuse_resume(f"edited arguments do not fit {name}: unknown {sorted(unknown)}, "
                                    f"missing {sorted(missing)}")
            return
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            unknown = set(args) - set(schema.model_fields)
            if unknown:
                raise refuse_resume(f"edited arguments do not fit {name}: unknown {sorted(unknown)}")
            try:
                schema.model_validate(dict(args))
            except ValidationError as exc:
                fields = ", ".join(".".join(str(p) for p in e["loc"]) or "value" for e in exc.errors())
                raise refuse_resume(f"edited arguments do not fit {name} (check: {fields})") from None

    return check


def _cache_result(store: ApprovalStore, rec: ApprovalRecord, result: Any) -> dict[str, Any] | None:
    """Seal the tool's output so a re-run of the node returns it instead of running again."""
    try:
        if isinstance(result, ToolMessage):
            data: dict[str, Any] = {"kind": "message", "data": message_to_dict(result)}
        elif isinstance(result, str):
            data = {"kind": "text", "data": result}
        else:
            return None
        if len(json.dumps(data)) > _MAX_CACHED_RESULT:
            return None
        return store.seal(rec, "result", data)
    except (TypeError, ValueError):
        return None


_UNSAFE_HINTS = {
    "hidden_characters": "contain invisible or direction-changing characters",
    "mixed_script": "mix look-alike alphabets in one word",
    "too_large": "are too large to show to the user",
    "too_deep": "are nested too deeply to show to the user",
}


def _unsafe(reason: str, tool: str, detail: str) -> UnsafeArgumentsError:
    why = _UNSAFE_HINTS[reason]
    return UnsafeArgumentsError(
        f"the arguments of {tool} {why} ({detail}); no approval was requested", reason=reason,
        hint=f"The arguments of this {tool} call {why}, so the user could not check them and it was not run. "
             "Call it again with plain text, exactly as the user wrote it.")


def _already_handled(rec: ApprovalRecord, message: str) -> ApprovalAlreadyHandledError:
    err = ApprovalAlreadyHandledError(message)
    err.approval_id = rec.approval_id  # type: ignore[attr-defined]
    return err


def _ran_digest(rec: ApprovalRecord) -> str:
    """The digest of the arguments that ran: the user's edit, else what they approved."""
    if rec.edited_args is None:
        return rec.args_digest
    try:
        return args_digest(rec.edited_args)
    except Exception:  # edited arguments were checked when decided; keep the request's digest
        return rec.args_digest


def _decide(rec: ApprovalRecord, value: ApprovalResponse, now: float) -> ApprovalRecord:
    if value.decision in ("approve", "edit", "reject"):
        # The answer came in a resume of the thread, whose owner check admitted the caller.
        audit_record("approval_decided", rec, outcome=value.decision, decider=rec.user_key)
    message = " ".join(value.message.split())[:300] if value.message else None
    if value.decision == "reject":
        return rec.update(status="denied", decision="reject", decision_message=message, decided_at=now)
    if value.decision == "edit":
        return rec.update(status="approved", decision="edit", edited_args=dict(value.args or {}),
                          decision_message=message, decided_at=now)
    if value.decision == "approve":
        return rec.update(status="approved", decision="approve", decision_message=message, decided_at=now)
    return rec
