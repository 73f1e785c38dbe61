"""What the user's device shows, in words a person uses (the approval page is the model for a
real authenticator): no developer ids, grouped IBANs, scopes in words, amounts that say when
no currency was given, the reason field with Deny."""

from __future__ import annotations

import time

from langchain_agent_auth.devserver._pages import approvals_page, scope_items
from langchain_agent_auth.devserver._rar import NBSP, describe


def _request(**extra):
    return {"id": "req_1", "client_id": "agent-client", "client_name": "Your assistant",
            "expires_at": time.time() + 300, "binding_message": "Pay Bob", "scope": "openid email", **extra}


def test_the_page_names_the_client_by_its_display_name_only():
    html = approvals_page(user="alice", requests=[_request()], csrf="c", flash=None)
    assert "Your assistant" in html and "agent-client" not in html


def test_scopes_are_words_and_unknown_ones_stay_visible():
    html = scope_items("email calendar.read x:custom")
    assert "Your email address" in html and "See your calendar events" in html
    assert ">email<" not in html and "<code>x:custom</code>" in html


def test_iban_is_grouped_in_fours_with_no_break_spaces():
    view = describe({"type": "payment_initiation", "instructedAmount": {"amount": "5.00", "currency": "EUR"},
                     "creditorAccount": {"iban": "DE89 3704 0044 0532 0130 00"}})
    assert view["rows"] == [("To account", f"IBAN: DE89{NBSP}3704{NBSP}0044{NBSP}0532{NBSP}0130{NBSP}00")]


def test_an_amount_without_currency_says_so():
    view = describe({"type": "agent_action", "actions": ["transfer"], "arguments": {"amount": 5000, "to": "Bob"}})
    assert view["rows"] == [("Arguments", "Amount: 5,000 (no currency given); To: Bob")]
    with_currency = describe({"type": "agent_action", "actions": ["transfer"],
                              "arguments": {"amount": 5000, "currency": "EUR"}})
    assert "no currency" not in with_currency["rows"][0][1]


def test_the_reason_field_belongs_to_deny_and_sits_under_the_buttons():
    html = approvals_page(user="alice", requests=[_request()], csrf="c", flash=None)
    actions_end = html.index("</div>", html.index('<div class="actions">'))
    reason = html.index('name="reason"')
    assert reason > actions_end and 'form="deny-form-req_1"' in html and 'id="deny-form-req_1"' in html
