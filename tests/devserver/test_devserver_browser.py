"""A real browser plays the user's phone: headless Chromium (Debian's package, driven by
Playwright for Python) signs in as alice, sees pending CIBA requests with their binding
messages and rendered details, approves one and denies another; the waiting polls get a
token and ``access_denied``. The approval page is saved to docs/approval-page.png.

Skips when Chromium is not installed, unless ``AGENT_AUTH_REQUIRE_BROWSER`` is set (CI), in
which case a missing browser fails the test.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import threading
import time
from typing import Any

import httpx
import pytest

from langchain_agent_auth.devserver import LocalProvider
from tests.devserver.devserver_helpers import CIBA, PAYMENT

pytestmark = pytest.mark.browser

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "approval-page.png"
PHONE_SCREENSHOT = ROOT / "docs" / "approval-page-phone.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AGENT_ACTION = [
    {
        "type": "agent_action",
        "actions": ["send_email"],
        "locations": ["https://mail.example.com"],
        "description": "Send the Q3 report to the finance team",
        "arguments": {"to": "finance@example.com", "subject": "Q3 report"},
    }
]


def _required() -> bool:
    return os.environ.get("AGENT_AUTH_REQUIRE_BROWSER", "") not in ("", "0", "false")


def _chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    else:
        if pathlib.Path(path).exists():
            return path
        reason = "Debian's chromium is not installed (apt-get install chromium)"
    if _required():
        pytest.fail(f"AGENT_AUTH_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


class Poller(threading.Thread):
    """The agent waiting for the user's answer: polls the token endpoint at the interval."""

    def __init__(self, idp: LocalProvider, auth_req_id: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.idp, self.auth_req_id, self.interval = idp, auth_req_id, interval
        self.result: dict[str, Any] | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client() as http:
            while time.monotonic() < deadline:
                r = http.post(
                    self.idp.issuer + "/token",
                    auth=(self.idp.client_id, self.idp.client_secret),
                    data={"grant_type": CIBA, "auth_req_id": self.auth_req_id},
                )
                body = r.json()
                if body.get("error") not in ("authorization_pending", "slow_down"):
                    self.result = body
                    return
                time.sleep(self.interval + (5 if body.get("error") == "slow_down" else 0))


def test_approve_and_deny_in_a_real_browser() -> None:
    executable = _chromium()
    from playwright.sync_api import expect, sync_playwright

    with LocalProvider(ciba_interval=1) as idp:
        auth = (idp.client_id, idp.client_secret)
        pay = httpx.post(
            idp.issuer + "/bc-authorize",
            auth=auth,
            data={
                "login_hint": "alice",
                "scope": "openid",
                "binding_message": "Pay ACME invoice 42 (code 7X2K)",
                "authorization_details": json.dumps(PAYMENT),
            },
        ).json()
        mail = httpx.post(
            idp.issuer + "/bc-authorize",
            auth=auth,
            data={
                "login_hint": "alice",
                "scope": "openid email",
                "binding_message": "Email the Q3 report <finance>",
                "authorization_details": json.dumps(AGENT_ACTION),
            },
        ).json()
        pending = {p["binding_message"]: p["id"] for p in idp.pending_approvals("alice")}
        pay_poll, mail_poll = Poller(idp, pay["auth_req_id"], 1), Poller(idp, mail["auth_req_id"], 1)
        pay_poll.start()
        mail_poll.start()

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 900, "height": 1000})
                page.goto(idp.approval_url)
                page.fill("#username", "alice")
                page.fill("#password", idp.users["alice"])
                page.click("#sign-in")
                page.wait_for_selector("h1:has-text('Pending approvals')")

                pay_card = page.locator(f"#request-{pending['Pay ACME invoice 42 (code 7X2K)']}")
                expect(pay_card.locator(".binding")).to_have_text("Pay ACME invoice 42 (code 7X2K)")
                expect(pay_card.locator(".detail .title")).to_have_text("Pay 250.00 EUR to ACME Corp")
                expect(pay_card).to_contain_text("DE89370400440532013000")
                mail_card = page.locator(f"#request-{pending['Email the Q3 report <finance>']}")
                expect(mail_card.locator(".binding")).to_have_text(
                    "Email the Q3 report <finance>"
                )  # escaped text
                expect(mail_card.locator(".detail .title")).to_have_text("Let the agent send email")
                expect(mail_card).to_contain_text("Send the Q3 report to the finance team")
                SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)

                # What a person sees: the client's display name (no developer ids), the IBAN in
                # groups of four that never break, scopes in words, the reason under the buttons.
                expect(pay_card).to_contain_text("Request from Your assistant")
                expect(pay_card).not_to_contain_text(idp.client_id)
                grouped = "\u00a0".join(["DE89", "3704", "0044", "0532", "0130", "00"])
                expect(pay_card.locator(".detail dd")).to_have_text(f"IBAN: {grouped}")
                expect(mail_card.locator("ul.scopes li")).to_have_text(["Your email address"])
                assert mail_card.locator(".actions + label.deny-reason-label input[form]").count() == 1
                phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
                phone.context.add_cookies(page.context.cookies())
                phone.goto(idp.approval_url)
                phone.wait_for_selector("h1:has-text('Pending approvals')")
                assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # reflows, no sideways scroll
                iban = phone.locator(f"#request-{pending['Pay ACME invoice 42 (code 7X2K)']} .detail dd")
                assert iban.evaluate("e => e.getClientRects().length") == 1  # one line: not broken mid-number
                phone.screenshot(path=str(PHONE_SCREENSHOT), full_page=True)
                phone.close()

                pay_card.locator("button.approve").click()
                expect(page.locator(".flash")).to_have_text("Approved. The agent can continue.")
                pay_poll.join(timeout=15)
                assert pay_poll.result is not None and "access_token" in pay_poll.result, pay_poll.result
                assert pay_poll.result["authorization_details"] == PAYMENT

                mail_card = page.locator(f"#request-{pending['Email the Q3 report <finance>']}")
                mail_card.locator("input[name=reason]").fill("Not before the review")
                mail_card.locator("button.deny").click()
                expect(page.locator(".flash")).to_have_text("Denied. The agent has been told no.")
                mail_poll.join(timeout=15)
                assert mail_poll.result == {
                    "error": "access_denied",
                    "error_description": "Not before the review",
                }
                expect(page.locator("#no-requests")).to_be_visible()
            finally:
                browser.close()
    assert SCREENSHOT.stat().st_size > 10_000 and PHONE_SCREENSHOT.stat().st_size > 10_000
