"""The pause protocol: every pause is ``interrupt(payload)`` with a typed payload.

Payloads are pydantic models dumped to plain dicts with a ``type`` discriminator, a schema
``version`` and a ``response_schema`` (JSON schema of the resume value). Resume values are
validated against their model; a value of the wrong shape raises
:class:`~langchain_agent_auth.errors.ResumeValueError` and leaves the pause in place.

Payload types (each defined by its pillar):

* ``connect_account`` (vault): connection, scopes, missing_scopes, authorize_url...
* ``approval_pending`` (approval, CIBA): binding_message, authorization_details...
* ``tool_approval`` (approval, in-app): tool name, args, allowed decisions.
* ``device_authorization`` (identity, RFC 8628): verification URI, user code, expiry.

No payload ever carries a token, secret, CIBA ``auth_req_id`` or device code.

Example:
    >>> from typing import Literal
    >>> class Ping(PausePayload):
    ...     type: Literal["ping"] = "ping"
    >>> Ping(tool_call_id="c1").to_interrupt()["type"]
    'ping'
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_agent_auth.core.errors import ResumeValueError

__all__ = ["PausePayload", "ResumeModel", "pause", "validate_resume"]

R = TypeVar("R", bound=BaseModel)


class ResumeModel(BaseModel):
    """Base for resume values: strict, no unknown fields."""

    model_config = ConfigDict(extra="forbid")


class PausePayload(BaseModel):
    """Base of every interrupt payload this toolkit raises."""

    model_config = ConfigDict(extra="forbid")

    type: str
    version: int = 1
    tool_call_id: str | None = None
    #: The resume value model for this payload (not serialized).
    resume_model: ClassVar[type[BaseModel] | None] = None

    def to_interrupt(self) -> dict[str, Any]:
        """The payload as the plain dict passed to ``interrupt()``."""
        data = self.model_dump(mode="json")
        if self.resume_model is not None:
            data["response_schema"] = self.resume_model.model_json_schema()
        return data


def validate_resume(value: Any, model: type[R]) -> R:
    """Validate a resume value, raising :class:`ResumeValueError` on a wrong shape.

    Example:
        >>> class Answer(ResumeModel):
        ...     ok: bool
        >>> validate_resume({"ok": True}, Answer).ok
        True
    """
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "value" for e in exc.errors())
        raise ResumeValueError(f"resume value does not match {model.__name__} (check: {fields})") from None


def pause(payload: PausePayload, resume_model: type[R] | None = None) -> Any:
    """Pause the graph with ``payload``; return the resume value.

    With a ``resume_model`` (or the payload's ``resume_model``) the value is validated
    *inside* ``interrupt()``: a value of the wrong shape fails that resume attempt without
    being recorded, so the same pause can be answered again (validating after ``interrupt()``
    returned would leave the bad value recorded for every later re-run).

    Must run inside a LangGraph node or tool with a checkpointer. The node re-runs from its
    start on resume, so everything before this call must be idempotent.
    """
    from langgraph.types import interrupt

    model = resume_model or payload.resume_model
    if model is None:
        return interrupt(payload.to_interrupt())
    return interrupt(payload.to_interrupt(), response_schema=model)
