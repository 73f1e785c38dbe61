"""Play a user's browser on the local provider's pages over real HTTP: the device verification
page, a sign-in with consent, and the whole authorization code + PKCE flow. What
:class:`~._provider.LocalProvider`'s ``approve_device``, ``sign_in`` and ``login`` do."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from langchain_agent_auth.core.errors import OAuthError, ProtocolError, oauth_error_from_response

Form = dict[str, Any]


class _Forms(HTMLParser):
    """Collect the forms of a page: action, method and named fields (inputs and buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": values.get("action", ""),
                    "method": values.get("method", "get").lower(),
                    "fields": [],
                    "buttons": [],
                }
            )
        elif tag in ("input", "button") and self.forms and values.get("name"):
            kind = values.get("type", "text" if tag == "input" else "submit")
            target = "buttons" if kind == "submit" else "fields"
            self.forms[-1][target].append((values["name"], values.get("value", ""), kind))


def forms(text: str) -> list[Form]:
    """The forms of an HTML page.

    Example:
        >>> forms('<form action="/x" method="POST"><input name="a" value="1"><button name="b"></form>')
        [{'action': '/x', 'method': 'post', 'fields': [('a', '1', 'text')], 'buttons': [('b', '', 'submit')]}]
    """
    parser = _Forms()
    parser.feed(text)
    return parser.forms


def _login_form(page_forms: list[Form]) -> Form | None:
    return next((f for f in page_forms if any(n == "password" for n, _, _ in f["fields"])), None)


def _fields(form: Form) -> dict[str, str]:
    return {n: v for n, v, _ in form["fields"]}


def _submit_login(browser: Any, page: Any, form: Form, username: str, password: str) -> Any:
    """Post the sign-in form; a wrong password is an :class:`OAuthError`."""
    data = _fields(form)
    data.update(username=username, password=password)
    page = browser.post(urljoin(str(page.url), form["action"]), data=data)
    if page.status_code == 401:
        raise OAuthError("wrong username or password", error="access_denied", status_code=401)
    return page


def approve_device(verification_uri: str, user_code: str, username: str, password: str, *, deny: bool = False) -> None:
    """Sign in on the verification page, type ``user_code``, then approve (or ``deny``)."""
    import httpx

    with httpx.Client(follow_redirects=True, timeout=15) as browser:
        page = browser.get(verification_uri)
        login = _login_form(forms(page.text))
        if login is not None:
            page = _submit_login(browser, page, login, username, password)
        code_form = next((f for f in forms(page.text) if f["action"] == "/device"), None)
        if code_form is None:
            raise ProtocolError(f"no code form on the verification page (HTTP {page.status_code})")
        data = _fields(code_form)
        data["user_code"] = user_code
        page = browser.post(urljoin(str(page.url), "/device"), data=data)
        action = "/device/deny" if deny else "/device/approve"
        decision = next((f for f in forms(page.text) if f["action"] == action), None)
        if decision is None:
            raise ProtocolError(f"the verification page did not accept the code (HTTP {page.status_code})")
        page = browser.post(urljoin(str(page.url), action), data=_fields(decision))
        if page.status_code != 200:
            raise ProtocolError(f"the decision was not recorded (HTTP {page.status_code})")


def sign_in(authorize_url: str, username: str, password: str, *, redirect_uri: str, timeout: float = 15.0) -> str:
    """Follow an authorization URL through sign-in and consent (allow); returns the URL the
    provider redirects to at ``redirect_uri``, without following it.

    A wrong password is an :class:`OAuthError` (401); a page with neither form, or a flow that
    never reaches ``redirect_uri``, a :class:`ProtocolError` carrying the last HTTP status.
    """
    import httpx

    target = urlsplit(redirect_uri)
    with httpx.Client(follow_redirects=False, timeout=timeout) as browser:
        response = browser.get(authorize_url)
        for _ in range(15):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                parts = urlsplit(location)
                if (parts.scheme, parts.netloc, parts.path) == (target.scheme, target.netloc, target.path):
                    return location
                response = browser.get(location)
                continue
            response = _answer_page(browser, response, username, password)
    raise ProtocolError("sign-in did not reach the redirect URI", status_code=response.status_code)


def _answer_page(browser: Any, response: Any, username: str, password: str) -> Any:
    """Fill in the sign-in form or allow on the consent page."""
    page_forms = [f for f in forms(response.text) if f["method"] == "post"]
    login_form = _login_form(page_forms)
    consent = next((f for f in page_forms if any(n == "decision" for n, _, _ in f["buttons"])), None)
    if login_form is not None:
        return _submit_login(browser, response, login_form, username, password)
    if consent is not None:
        pairs = [(n, v) for n, v, _ in consent["fields"]] + [("decision", "allow")]
        return browser.post(urljoin(str(response.url), consent["action"]), content=urlencode(pairs),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    raise ProtocolError(f"unexpected page during sign-in (HTTP {response.status_code})",
                        status_code=response.status_code)


@dataclass
class CodeRequest:
    """An authorization code + PKCE request of one client at one issuer."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    scope: str
    resource: list[str] = field(default_factory=list)
    audience: str | None = None
    authorization_details: list[dict[str, Any]] | None = None
    nonce: str | None = None

    def params(self, state: str, verifier: str) -> list[tuple[str, str]]:
        params = [
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("state", state),
            ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ]
        if self.nonce:
            params.append(("nonce", self.nonce))
        params += [("resource", item) for item in self.resource]
        if self.audience:
            params.append(("audience", self.audience))
        if self.authorization_details is not None:
            params.append(("authorization_details", json.dumps(self.authorization_details)))
        return params


def code_flow(request: CodeRequest, username: str, password: str) -> dict[str, Any]:
    """Sign in through the pages, then redeem the code; returns the token response."""
    import httpx

    verifier, state = generate_token(64), generate_token(24)
    authorize_url = f"{request.issuer}/authorize?{urlencode(request.params(state, verifier))}"
    location = sign_in(authorize_url, username, password, redirect_uri=request.redirect_uri)
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if "error" in query:
        raise oauth_error_from_response(query)
    if query.get("state") != state or query.get("iss") != request.issuer or "code" not in query:
        raise ProtocolError("the authorization response is missing code, state or iss")
    form = {
        "grant_type": "authorization_code",
        "code": query["code"],
        "redirect_uri": request.redirect_uri,
        "code_verifier": verifier,
    }
    auth = None
    if request.client_secret:
        auth = (request.client_id, request.client_secret)
    else:
        form["client_id"] = request.client_id
    with httpx.Client(follow_redirects=False, timeout=15) as browser:
        token = browser.post(request.issuer + "/token", data=form, auth=auth)
    body = token.json()
    if token.status_code != 200:
        raise oauth_error_from_response(body, status_code=token.status_code)
    return body
