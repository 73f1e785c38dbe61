"""Resuming threads of a LangGraph server (``langgraph dev`` / LangGraph Platform):
:class:`RemoteResumer` and :class:`LangGraphServerStore`, the server's store API seen as a
LangGraph ``BaseStore`` so that the pending sources read what the server's graphs wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from langgraph.store.base import BaseStore, GetOp, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp

from langchain_agent_auth.core.effects import Call, Flow, arun, run
from langchain_agent_auth.core.errors import ConfigurationError
from langchain_agent_auth.core.identity import act_as_header
from langchain_agent_auth.resume._pending import PendingItem, PendingSource
from langchain_agent_auth.resume._plan import _interrupt_list
from langchain_agent_auth.resume._resumer import _BaseResumer

__all__ = ["LangGraphServerStore", "RemoteResumer"]


class LangGraphServerStore(BaseStore):
    """A LangGraph ``BaseStore`` over a LangGraph server's store API (langgraph-sdk), so
    the resumer reads the approvals the server's graphs wrote.

    Example:
        >>> LangGraphServerStore(url="http://127.0.0.1:2024")
        LangGraphServerStore(url='http://127.0.0.1:2024')
    """

    def __init__(self, client: Any = None, sync_client: Any = None, *, url: str | None = None,
                 api_key: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        try:
            import langgraph_sdk
        except ImportError:  # pragma: no cover - optional dependency
            raise ConfigurationError("the LangGraph server resumer needs langgraph-sdk: "
                                     "pip install 'langchain-agent-auth[server]'") from None
        self.url = url
        self._client = client or langgraph_sdk.get_client(url=url, api_key=api_key, headers=headers)
        self._sync = sync_client or langgraph_sdk.get_sync_client(url=url, api_key=api_key, headers=headers)

    def __repr__(self) -> str:
        return f"LangGraphServerStore(url={self.url!r})"

    @staticmethod
    def _item(data: Mapping[str, Any], search: bool = False) -> Item:
        def ts(value: Any) -> datetime:
            if isinstance(value, datetime):
                return value
            try:
                return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                return datetime.now()

        kwargs = {"value": data["value"], "key": data["key"], "namespace": tuple(data["namespace"]),
                  "created_at": ts(data.get("created_at")), "updated_at": ts(data.get("updated_at"))}
        return SearchItem(**kwargs, score=data.get("score")) if search else Item(**kwargs)

    def _api(self, method: str, *args: Any, **kwargs: Any) -> Call:
        """One call of the server's store API: the sync client under ``batch``, the async one under ``abatch``."""
        return Call(lambda: getattr(self._sync.store, method)(*args, **kwargs),
                    lambda: getattr(self._client.store, method)(*args, **kwargs))

    def _get(self, op: GetOp) -> Flow[Item | None]:
        try:
            data = yield self._api("get_item", list(op.namespace), op.key)
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                return None
            raise
        return self._item(data) if data else None

    def _ops(self, ops: Iterable[Any]) -> Flow[list[Any]]:
        out: list[Any] = []
        for op in ops:
            if isinstance(op, GetOp):
                out.append((yield from self._get(op)))
            elif isinstance(op, PutOp):
                if op.value is None:
                    yield self._api("delete_item", list(op.namespace), op.key)
                else:
                    yield self._api("put_item", list(op.namespace), op.key, op.value, index=op.index)
                out.append(None)
            elif isinstance(op, SearchOp):
                res = yield self._api("search_items", list(op.namespace_prefix), filter=op.filter, limit=op.limit,
                                      offset=op.offset, query=op.query)
                out.append([self._item(i, True) for i in res.get("items", [])])
            elif isinstance(op, ListNamespacesOp):  # pragma: no cover - not used by the resumer
                res = yield self._api("list_namespaces", limit=op.limit, offset=op.offset, max_depth=op.max_depth)
                out.append([tuple(n) for n in res.get("namespaces", [])])
            else:  # pragma: no cover
                raise TypeError(f"unsupported store op {type(op).__name__}")
        return out

    def batch(self, ops: Iterable[Any]) -> list[Any]:
        return run(self._ops(ops))

    async def abatch(self, ops: Iterable[Any]) -> list[Any]:
        return await arun(self._ops(ops))


class RemoteResumer(_BaseResumer):
    """Resume threads of a LangGraph server (``langgraph dev`` / LangGraph Platform).

    Reads pending approvals from the server's store, polls the provider, and resumes a
    thread with ``runs.wait(thread_id, assistant_id, command={"resume": {...}})`` using the
    thread's assistant and the approval's context (the user) or config.

    Args:
        url / api_key / headers: the server (or pass ``client`` / ``sync_client`` from
            ``langgraph_sdk.get_client`` / ``get_sync_client``).
        auth: an ``httpx.Auth`` for every request to the server, e.g.
            :class:`~langchain_agent_auth.oauth.ClientCredentialsAuth` for a service client the
            server's :func:`~langchain_agent_auth.identity.langgraph_auth.langgraph_auth` lists in
            ``trusted_services``.
        act_as: send the approval's user in the act-as header when resuming, so the resumed
            run acts for that user on a server with auth (ignored by servers without it).
        approvers / sources / context / tick: as :class:`ApprovalResumer`.
        assistant_id: used when neither the approval nor the thread names one.

    Example:
        >>> from langchain_agent_auth.core.crypto import Keyring
        >>> from langchain_agent_auth.approval import InAppApprover
        >>> RemoteResumer("http://127.0.0.1:2024", approvers=[InAppApprover(keyring=Keyring.generate())])
        RemoteResumer(url='http://127.0.0.1:2024')
    """

    def __init__(self, url: str | None = None, *, client: Any = None, sync_client: Any = None,
                 api_key: str | None = None, headers: Mapping[str, str] | None = None,
                 approvers: Sequence[Any] = (), sources: Iterable[PendingSource] = (), store: Any = None,
                 assistant_id: str | None = None, auth: httpx.Auth | None = None, act_as: bool = True,
                 **kwargs: Any) -> None:
        if store is None:
            store = LangGraphServerStore(client, sync_client, url=url, api_key=api_key, headers=headers)
        if isinstance(store, LangGraphServerStore):
            client, sync_client = store._client, store._sync
        else:
            import langgraph_sdk

            client = client or langgraph_sdk.get_client(url=url, api_key=api_key, headers=headers)
            sync_client = sync_client or langgraph_sdk.get_sync_client(url=url, api_key=api_key, headers=headers)
        if auth is not None:
            for sdk_client in (client, sync_client):
                sdk_client.http.client.auth = auth
        super().__init__(approvers=approvers, sources=sources, store=store, **kwargs)
        self.url = url
        self.client = client
        self.sync_client = sync_client
        self.assistant_id = assistant_id
        self.act_as = act_as

    def __repr__(self) -> str:
        return f"RemoteResumer(url={self.url!r})"

    def _assistant(self, item: PendingItem, thread: Mapping[str, Any] | None) -> str:
        meta = (thread or {}).get("metadata") or {}
        found = item.assistant_id or meta.get("assistant_id") or item.graph_id or meta.get("graph_id") \
            or self.assistant_id
        if not found:
            raise ConfigurationError(f"no assistant for thread {item.thread_id}; pass assistant_id=")
        return str(found)

    def _run_kwargs(self, item: PendingItem, resume: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"command": {"resume": resume}}
        user = (item.context or {}).get("user") if isinstance(item.context, Mapping) else None
        if self.act_as and isinstance(user, Mapping) and user.get("subject"):
            kwargs["headers"] = act_as_header(dict(user))
        context = self._context_for(item)
        if context:
            kwargs["context"] = _jsonable(context)
        elif item.config:
            kwargs["config"] = {"configurable": dict(item.config)}
        return kwargs

    def _interrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        return _interrupt_list(self.sync_client.threads.get_state(item.thread_id, subgraphs=True))

    async def _ainterrupts(self, item: PendingItem) -> list[tuple[str, Any]]:
        return _interrupt_list(await self.client.threads.get_state(item.thread_id, subgraphs=True))

    def _resume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        thread = None if item.assistant_id else self.sync_client.threads.get(item.thread_id)
        self.sync_client.runs.wait(item.thread_id, self._assistant(item, thread), **self._run_kwargs(item, resume))

    async def _aresume(self, item: PendingItem, resume: dict[str, Any]) -> None:
        thread = None if item.assistant_id else await self.client.threads.get(item.thread_id)
        await self.client.runs.wait(item.thread_id, self._assistant(item, thread), **self._run_kwargs(item, resume))


def _jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
