"""``agent-auth resumer``: options, loading ``module:attr`` objects and factories, one pass."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from langchain_agent_auth.cli import build_parser, main
from langchain_agent_auth.cli._resumer import build, load_object


def test_help_lists_the_resumer():
    out = subprocess.run([sys.executable, "-m", "langchain_agent_auth.cli", "resumer", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--graph" in out and "--url" in out and "--ping-port" in out and "--once" in out


def test_graph_or_url_is_required(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["resumer"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["resumer", "--graph", "a:b", "--url", "http://x"])


def test_lease_is_a_positive_number_of_seconds(capsys):
    args = build_parser().parse_args(["resumer", "--url", "http://x", "--lease", "30"])
    assert args.lease == 30.0
    assert build_parser().parse_args(["resumer", "--url", "http://x"]).lease == 120.0
    for bad in ("0", "-5", "nan", "inf", "soon"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["resumer", "--url", "http://x", "--lease", bad])
    assert "positive number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["nocolon", ":attr", "module:"])
def test_load_object_rejects_bad_specs(spec):
    from langchain_agent_auth.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="module:attr"):
        load_object(spec)


def test_load_object_calls_factories_only():
    assert load_object("tests.approval.cli_app:make_list") == [1, 2]
    assert load_object("tests.approval.cli_app:needs_args").__name__ == "needs_args"


def test_once_runs_one_pass_and_prints_its_report(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["agent-auth"])
    code = main(["resumer", "--graph", "tests.approval.cli_app:graph", "--approver", "tests.approval.cli_app:approvers",
                 "--once"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["due"] == 0 and report["errors"] == []
    args = build_parser().parse_args(["resumer", "--url", "http://127.0.0.1:9", "--approver",
                                      "tests.approval.cli_app:approvers"])
    assert type(build(args)).__name__ == "RemoteResumer"


def test_service_credentials_build_a_client_credentials_auth():
    import argparse

    from langchain_agent_auth.cli._resumer import _service_auth
    from langchain_agent_auth.core.errors import ConfigurationError
    from langchain_agent_auth.oauth import ClientCredentialsAuth

    base = dict(service_issuer="https://idp.example", service_client_id="resumer", service_client_secret="s3cret",
                service_scope=None, service_resource="urn:example:api")
    auth = _service_auth(argparse.Namespace(**base))
    assert isinstance(auth, ClientCredentialsAuth) and auth.client.client_id == "resumer"
    assert "s3cret" not in repr(auth)
    assert _service_auth(argparse.Namespace(**{**base, "service_issuer": None})) is None
    with pytest.raises(ConfigurationError):
        _service_auth(argparse.Namespace(**{**base, "service_client_secret": None}))
