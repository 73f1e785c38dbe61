import pytest

from langchain_agent_auth import errors as E

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
OPAQUE = "x7Hq0vLr3bS9dK2mW8pZ4nF6tY1uJ5cE0aG"


@pytest.mark.parametrize(
    "code,cls",
    [
        ("invalid_request", E.InvalidRequestError),
        ("invalid_client", E.InvalidClientError),
        ("invalid_grant", E.InvalidGrantError),
        ("unauthorized_client", E.UnauthorizedClientError),
        ("unsupported_grant_type", E.UnsupportedGrantTypeError),
        ("invalid_scope", E.InvalidScopeError),
        ("invalid_target", E.InvalidTargetError),
        ("access_denied", E.AccessDeniedError),
        ("authorization_pending", E.AuthorizationPendingError),
        ("slow_down", E.SlowDownError),
        ("expired_token", E.ExpiredTokenError),
        ("transaction_failed", E.TransactionFailedError),
        ("unknown_user_id", E.UnknownUserIdError),
        ("expired_login_hint_token", E.ExpiredLoginHintTokenError),
        ("missing_user_code", E.MissingUserCodeError),
        ("invalid_user_code", E.InvalidUserCodeError),
        ("invalid_binding_message", E.InvalidBindingMessageError),
        ("invalid_authorization_details", E.InvalidAuthorizationDetailsError),
        ("unsupported_token_type", E.UnsupportedTokenTypeError),
        ("invalid_token", E.InvalidTokenError),
        ("insufficient_scope", E.InsufficientScopeError),
        ("server_error", E.ServerError),
        ("temporarily_unavailable", E.TemporarilyUnavailableError),
    ],
)
def test_every_spec_code_maps_to_its_class(code, cls):
    err = E.oauth_error_from_response({"error": code, "error_description": "why"}, status_code=400)
    assert type(err) is cls
    assert err.error == code and err.error_description == "why" and err.status_code == 400
    assert isinstance(err, E.OAuthError) and isinstance(err, E.AgentAuthError)
    assert str(err) == f"{code}: why"


def test_unknown_code_keeps_the_code():
    err = E.oauth_error_from_response({"error": "weird_thing"})
    assert type(err) is E.OAuthError and err.error == "weird_thing"
    assert E.oauth_error_from_response({"error": "invalid_grant"}).error_description is None


def test_hostile_error_bodies_do_not_crash():
    for body in ({}, {"error": 5}, {"error": ""}, {"error": "x" * 10_000, "error_description": ["a"]}):
        err = E.oauth_error_from_response(body)
        assert isinstance(err, E.OAuthError)
        assert len(err.error) <= 64


def test_str_never_contains_a_token():
    err = E.oauth_error_from_response(
        {"error": "invalid_grant", "error_description": f"token {JWT} and refresh_token=abc123 {OPAQUE}"}
    )
    text = str(err) + repr(err.args) + (err.error_description or "")
    assert JWT not in text and "abc123" not in text and OPAQUE not in text
    assert "[redacted]" in text
    assert JWT not in str(E.ProtocolError(f"bad body {JWT}"))
    assert "s3cr3t-value" not in str(E.ConfigurationError("oops", hint="x")) + E.redact(
        "client_secret: s3cr3t-value"
    )


def test_redact_keeps_ordinary_text():
    text = "invalid_grant: the refresh token was revoked at https://idp.example/revoke"
    assert E.redact(text) == text
    assert E.redact("known secret here", "secret") == "known [redacted] here"


def test_for_model_prefers_hint():
    assert E.InvalidClientError("x").for_model().startswith("The agent's OAuth client")
    assert E.ApprovalDeniedError("alice said no").for_model() == "alice said no"


def test_model_error_has_position():
    err = E.ModelError("unknown relation 'foo'", line=3, column=14)
    assert (err.line, err.column) == (3, 14) and "line 3, column 14" in str(err)


def test_credential_unavailable_carries_status():
    err = E.CredentialUnavailableError(
        "missing", connection="calendar", status="missing_scopes", missing_scopes=("write",)
    )
    assert err.missing_scopes == ("write",) and err.status == "missing_scopes"
