"""HTML pages of the local provider: sign-in, consent, the approval "device", connections.

Every value that comes from a request, a client or a user goes through :func:`esc`; the pages
carry no script (the Content-Security-Policy forbids it), so a binding message such as
``<script>...`` is shown as text.
"""

from __future__ import annotations

import html
import pathlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_agent_auth.devserver._rar import inert

_SCOPE_TEXT = {
    "openid": "Confirm who you are",
    "profile": "Your name",
    "email": "Your email address",
    "offline_access": "Keep access while you are away",
    "api:read": "Read the example API",
    "api:write": "Change data in the example API",
    "downstream:read": "Read the example downstream API",
    "downstream:write": "Change data in the example downstream API",
    "bank:read": "See your bank balance and transfers",
    "bank:transfer": "Make bank transfers",
    "calendar.read": "See your calendar events",
    "calendar.write": "Create calendar events",
}

_CSS = (pathlib.Path(__file__).parent / "page.css").read_text(encoding="utf-8")


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def layout(
    title: str,
    body: str,
    *,
    realm: str = "main",
    user: str | None = None,
    csrf: str | None = None,
    refresh: int | None = None,
) -> str:
    brand = "Demo upstream (third-party API provider)" if realm == "upstream" else "agent-auth local provider"
    prefix = "/upstream" if realm == "upstream" else ""
    who = ""
    if user:
        who = (
            f'<form method="post" action="{prefix}/logout"><span class="who">Signed in as <b>{esc(user)}</b>'
            f'</span> <input type="hidden" name="csrf" value="{esc(csrf)}">'
            '<button class="plain" type="submit">Sign out</button></form>'
        )
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{meta}<title>{esc(title)} - {esc(brand)}</title><style>{_CSS}</style></head>"
        f"<body><header><b>{esc(brand)}</b>{who}</header><main>{body}</main></body></html>"
    )


def _hidden(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields)


def login_page(
    *, action: str, next_url: str, csrf: str, realm: str, error: str | None = None, users: Iterable[str] = ()
) -> str:
    hint = ", ".join(users)
    body = (
        "<h1>Sign in</h1>"
        + (f'<div class="error">{esc(error)}</div>' if error else "")
        + f'<form class="card" method="post" action="{esc(action)}">'
        + _hidden([("csrf", csrf), ("next", next_url)])
        + '<label for="username">Username</label><input type="text" id="username" name="username" '
        'autocomplete="username" autofocus required>'
        '<label for="password">Password</label><input type="password" id="password" name="password" '
        'autocomplete="current-password" required>'
        '<div class="actions"><button class="approve" type="submit" id="sign-in">Sign in</button></div>'
        + (
            f'<p class="muted">Seeded users: {esc(hint)}. Their passwords are in the READY line of '
            "<code>agent-auth dev</code> and in <code>secrets.json</code> in its data directory.</p>"
            if hint
            else ""
        )
        + "</form>"
    )
    return layout("Sign in", body, realm=realm)


def scope_items(scope: str | None) -> str:
    items = []
    for item in (scope or "").split():
        text = _SCOPE_TEXT.get(item)
        items.append(f'<li title="{esc(item)}">{esc(text)}</li>' if text else f"<li><code>{esc(item)}</code></li>")
    return f'<ul class="scopes">{"".join(items)}</ul>' if items else ""


def detail_block(views: Iterable[Mapping[str, Any]], raw: Any) -> str:
    """Authorization details rendered for a person, with the raw JSON folded underneath."""
    import json

    parts = []
    for view in views:
        rows = "".join(f"<dt>{esc(label)}</dt><dd>{esc(text)}</dd>" for label, text in view["rows"])
        parts.append(
            f'<div class="detail" data-type="{esc(view["type"])}">'
            f'<div class="title">{esc(view["title"])}</div>' + (f"<dl>{rows}</dl>" if rows else "") + "</div>"
        )
    if raw:
        parts.append(
            "<details><summary>Technical details (JSON)</summary>"
            f"<pre>{esc(inert(json.dumps(raw, indent=2, ensure_ascii=False), keep_newlines=True))}</pre></details>"
        )
    return "".join(parts)


def consent_page(
    *,
    action: str,
    client_name: str,
    scope: str,
    resources: list[str],
    details_views: list[Mapping[str, Any]],
    details_raw: Any,
    fields: list[tuple[str, str]],
    csrf: str,
    realm: str,
    user: str,
    session_csrf: str,
) -> str:
    targets = "".join(f"<li><code>{esc(r)}</code></li>" for r in resources)
    body = (
        "<h1>Allow access?</h1>"
        f'<form class="card" method="post" action="{esc(action)}">'
        f"<p><b>{esc(client_name)}</b> asks to access your account:</p>"
        + scope_items(scope)
        + (f'<p class="muted">For:</p><ul class="scopes">{targets}</ul>' if targets else "")
        + detail_block(details_views, details_raw)
        + _hidden([*fields, ("csrf", csrf)])
        + '<div class="actions">'
        '<button class="approve" type="submit" name="decision" value="allow" id="allow">Allow</button>'
        '<button class="deny" type="submit" name="decision" value="deny" id="deny">Deny</button>'
        "</div></form>"
    )
    return layout("Consent", body, realm=realm, user=user, csrf=session_csrf)


def _remaining(expires_at: int, now: float) -> str:
    left = max(0, int(expires_at - now))
    return f"{-(-left // 60)} min" if left >= 60 else f"{left} s"


def approvals_page(
    *, user: str, requests: list[Mapping[str, Any]], csrf: str, flash: str | None, now: float | None = None
) -> str:
    cards = []
    for req in requests:
        rid = esc(req["id"])
        scopes = [s for s in (req.get("scope") or "").split() if s != "openid"]
        binding = req.get("binding_message")
        cards.append(
            f'<section class="card request" id="request-{rid}" data-request-id="{rid}">'
            f'<div class="muted">Request from <b>{esc(req["client_name"])}</b> &middot; '
            f"expires in {esc(_remaining(req['expires_at'], time.time() if now is None else now))}</div>"
            + (
                '<div class="binding" title="Check that your agent shows the same message">'
                f"{esc(binding)}</div>"
                if binding
                else '<p class="muted">No binding message was sent with this request.</p>'
            )
            + detail_block(req.get("authorization_details_view") or [], req.get("authorization_details"))
            + (f'<p class="muted">It will receive:</p>{scope_items(" ".join(scopes))}' if scopes else "")
            + '<div class="actions">'
            f'<form method="post" action="/approvals/{rid}/approve">{_hidden([("csrf", csrf)])}'
            f'<button class="approve" type="submit" id="approve-{rid}">Approve</button></form>'
            f'<form method="post" action="/approvals/{rid}/deny" class="deny-form" id="deny-form-{rid}">'
            f'{_hidden([("csrf", csrf)])}'
            f'<button class="deny" type="submit" id="deny-{rid}">Deny</button></form>'
            "</div>"
            # The reason goes with "Deny" (the form= attribute), under the buttons, not between them.
            f'<label class="deny-reason-label">If you deny, tell the agent why (optional) '
            f'<input class="deny-reason" type="text" name="reason" form="deny-form-{rid}" maxlength="200">'
            "</label></section>"
        )
    body = (
        "<h1>Pending approvals</h1>"
        + (f'<div class="flash">{esc(flash)}</div>' if flash else "")
        + (
            "".join(cards)
            if cards
            else '<div class="card muted" id="no-requests">Nothing is waiting for you. '
            "This page refreshes every few seconds.</div>"
        )
    )
    return layout("Approvals", body, user=user, csrf=csrf, refresh=None if cards else 5)


def connections_page(
    *,
    user: str,
    rows: list[Mapping[str, Any]],
    available: Mapping[str, Iterable[str]],
    csrf: str,
    flash: str | None,
) -> str:
    linked = {row["connection"]: row for row in rows}
    cards = []
    for name, scopes in available.items():
        row = linked.get(name)
        status = row["status"] if row else "not connected"
        scope_text = row["scope"] if row else " ".join(s for s in scopes if s != "profile")
        action = (
            f'<form method="post" action="/connections/{esc(name)}/disconnect">{_hidden([("csrf", csrf)])}'
            f'<button class="deny" type="submit">Disconnect</button></form>'
            if row
            else ""
        )
        cards.append(
            f'<section class="card" id="connection-{esc(name)}"><b>{esc(name)}</b> '
            f'<span class="muted">({esc(status)})</span>{scope_items(scope_text)}<div class="actions">'
            f'<a href="/connections/{esc(name)}/connect"><button class="approve" type="button">'
            f"{'Reconnect' if row else 'Connect'}</button></a>{action}</div></section>"
        )
    body = (
        "<h1>Connected accounts</h1>"
        + (f'<div class="flash">{esc(flash)}</div>' if flash else "")
        + "".join(cards)
    )
    return layout("Connections", body, user=user, csrf=csrf)


def message_page(title: str, message: str, *, realm: str = "main") -> str:
    return layout(title, f'<h1>{esc(title)}</h1><div class="card">{esc(message)}</div>', realm=realm)


def index_page(info: Mapping[str, Any]) -> str:
    links = [
        ("Pending approvals (the user's device)", "/approvals"),
        ("Connected accounts (Token Vault)", "/connections"),
        ("OpenID configuration", "/.well-known/openid-configuration"),
        ("JWKS", "/jwks"),
        ("Demo upstream metadata", "/.well-known/oauth-authorization-server/upstream"),
    ]
    items = "".join(f'<li><a href="{esc(href)}">{esc(text)}</a></li>' for text, href in links)
    body = (
        f'<h1>Local identity provider</h1><div class="card"><p>Issuer <code>{esc(info["issuer"])}</code></p>'
        f"<ul>{items}</ul></div>"
    )
    return layout("Home", body)
