"""The signed-in user's pages on the main realm: the approval "device" (CIBA requests to
approve or deny) and the connected accounts (Token Vault connections). Handlers are functions
of ``(site, ..., request)`` bound by :mod:`._app`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from authlib.oauth2 import OAuth2Error
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from langchain_agent_auth.devserver import _ciba, _exchange, _pages
from langchain_agent_auth.devserver._site import expired_session, page, redirect, signed_form

if TYPE_CHECKING:
    from langchain_agent_auth.devserver._site import Site

FLASH = {
    "approved": "Approved. The agent can continue.",
    "denied": "Denied. The agent has been told no.",
    "gone": "That request was already answered or has expired.",
    "linked": "Account connected.",
    "unlinked": "Account disconnected.",
    "cancelled": "Connecting the account was cancelled.",
    "failed": "Connecting the account failed; try again.",
}


# ---------------------------------------------------------------------------- approvals (the device)
async def approvals_page(site: Site, request: Request) -> Response:
    session, response = site.require_session(request, "/approvals")
    if response:
        return response
    flash = FLASH.get(request.query_params.get("done", ""))
    items = _ciba.list_requests(site.provider, user=session.sub)
    html = _pages.approvals_page(
        user=session.sub, requests=items, csrf=session.csrf, flash=flash, now=site.provider.now()
    )
    return page(html)


async def decide(site: Site, action: str, request: Request) -> Response:
    """``POST /approvals/{id}/approve|deny`` from the approval page."""
    provider = site.provider
    session, response = site.require_session(request, "/approvals")
    if response:
        return response
    form = await signed_form(request, session)
    if form is None:
        return expired_session("Reload the approvals page.")
    request_id = request.path_params["id"]
    try:
        if action == "approve":
            _, ping = await run_in_threadpool(_ciba.approve, provider, request_id, user=session.sub)
        else:
            reason = (form.get("reason") or "").strip()[:200] or None
            _, ping = await run_in_threadpool(_ciba.deny, provider, request_id, user=session.sub, reason=reason)
    except _ciba.DecisionError:
        return redirect("/approvals?done=gone")
    if ping:
        provider.spawn(_ciba.send_ping(provider, ping))
    return redirect(f"/approvals?done={'approved' if action == 'approve' else 'denied'}")


# ---------------------------------------------------------------------------- connections (Token Vault)
async def connections_page(site: Site, request: Request) -> Response:
    session, response = site.require_session(request, "/connections")
    if response:
        return response
    flash = FLASH.get(request.query_params.get("done", ""))
    rows = _exchange.list_connections(site.provider, session.sub)
    return page(
        _pages.connections_page(
            user=session.sub, rows=rows, available=_exchange.CONNECTIONS, csrf=session.csrf, flash=flash
        )
    )


async def connect(site: Site, request: Request) -> Response:
    name = request.path_params["connection"]
    session, response = site.require_session(request, f"/connections/{name}/connect")
    if response:
        return response
    try:
        url = _exchange.start_connect(site.provider, session.sub, name, request.query_params.get("scope"))
    except ValueError as exc:
        return page(_pages.message_page("Cannot connect", str(exc)), 400)
    return redirect(url)


async def connect_callback(site: Site, request: Request) -> Response:
    session, response = site.require_session(request, "/connections")
    if response:
        return response
    params = request.query_params
    if params.get("error") or not params.get("code") or not params.get("state"):
        return redirect("/connections?done=cancelled")
    try:
        await run_in_threadpool(
            _exchange.finish_connect, site.provider, session.sub, params["state"], params["code"]
        )
    except (ValueError, OAuth2Error):
        return redirect("/connections?done=failed")
    return redirect("/connections?done=linked")


async def disconnect(site: Site, request: Request) -> Response:
    session, response = site.require_session(request, "/connections")
    if response:
        return response
    if await signed_form(request, session) is None:
        return expired_session()
    await run_in_threadpool(_exchange.unlink, site.provider, session.sub, request.path_params["connection"])
    return redirect("/connections?done=unlinked")
