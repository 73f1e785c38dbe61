"""``open_storage``: one URL names the store and the checkpointer; the demo and the examples
run on each kind, PostgreSQL included (LangGraph's own PostgresStore / PostgresSaver); their
runs fork from the session's pre-imported Python (``prefork``)."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from langchain_agent_auth.core.errors import ConfigurationError
from langchain_agent_auth.core.storage import STORE_ENV, open_storage, redact_url
from tests.demo.helpers import demo_env
from tests.support.prefork import Zygote

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_a_directory_or_sqlite_url_opens_sqlite_files(tmp_path):
    for target in (tmp_path / "a", f"sqlite:///{tmp_path / 'b'}"):
        with open_storage(target) as storage:
            assert (type(storage.store).__name__, type(storage.checkpointer).__name__) == ("SqliteStore", "SqliteSaver")
            storage.store.put(("x",), "k", {"v": 1})
        directory = pathlib.Path(str(target).removeprefix("sqlite://"))
        assert sorted(p.name for p in directory.glob("*.sqlite")) == ["agent_auth.sqlite", "checkpoints.sqlite"]
        with open_storage(target) as again:
            assert again.store.get(("x",), "k").value == {"v": 1}


def test_sqlite_files_are_private_like_every_data_dir_the_toolkit_creates(tmp_path):
    with open_storage(tmp_path / "new" / "dir") as storage:
        storage.store.put(("x",), "k", {"v": 1})
    assert oct((tmp_path / "new" / "dir").stat().st_mode & 0o777) == "0o700"
    for file in (tmp_path / "new" / "dir").glob("*.sqlite*"):
        assert oct(file.stat().st_mode & 0o777) == "0o600", file


def test_the_environment_names_the_store_and_an_explicit_url_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENV, "memory:")
    with open_storage(default_dir=tmp_path) as storage:
        assert storage.kind == "memory"
    with open_storage(tmp_path / "s") as storage:
        assert storage.kind == "sqlite"
    monkeypatch.delenv(STORE_ENV)
    with open_storage(default_dir=tmp_path / "d") as storage:
        assert storage.kind == "sqlite" and (tmp_path / "d" / "agent_auth.sqlite").exists()
    with pytest.raises(ConfigurationError, match=STORE_ENV):
        open_storage()


@pytest.mark.parametrize("url", ["mysql://u:pw@db/x", "redis://u:pw@localhost:6379/0", "sqlite://"])
def test_an_unusable_url_is_a_configuration_error_that_names_it_without_the_password(url):
    with pytest.raises(ConfigurationError) as info:
        open_storage(url)
    assert "pw" not in str(info.value)
    assert redact_url(url).split("@")[-1].split("/")[0] in str(info.value) or "sqlite" in str(info.value)


def test_an_unreachable_postgres_is_a_clear_error_without_the_password():
    with pytest.raises(ConfigurationError) as info:
        open_storage("postgresql://app:hunter2@127.0.0.1:1/agents?connect_timeout=2")
    message = str(info.value)
    assert "hunter2" not in message and "app:***@127.0.0.1:1" in message, message


def test_redact_url_keeps_everything_but_the_password():
    assert redact_url("postgresql://app:s3cret@db:5432/agents") == "postgresql://app:***@db:5432/agents"
    assert redact_url("postgresql://app@db/agents") == "postgresql://app@db/agents"


def test_postgres_store_and_saver_round_trip(postgres):
    url = postgres.database("storage_roundtrip")
    with open_storage(url) as storage:
        assert (type(storage.store).__name__, type(storage.checkpointer).__name__) == ("PostgresStore", "PostgresSaver")
        storage.store.put(("agent_auth", "t"), "k", {"v": 1})
    with open_storage(url) as again:  # setup() is idempotent; data is durable
        assert again.store.get(("agent_auth", "t"), "k").value == {"v": 1}


DEMO = ["-m", "langchain_agent_auth.cli", "demo"]


def _run(zygote: Zygote, args: list[str], env: dict[str, str],
         cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python ARGS``, stdin closed, forked from the session's pre-imported Python."""
    return zygote.run(args, timeout=180, env=env, cwd=cwd)


def test_the_demo_runs_entirely_on_postgres(postgres, prefork, tmp_path):
    url = postgres.database("demo_pg")
    proc = _run(prefork, [*DEMO, "--approve", "auto", "--no-color", "--store", url, "--data-dir",
                 str(tmp_path / "demo")], demo_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the bank executed 1 transfer" in proc.stdout
    assert not (tmp_path / "demo" / "agent_auth.sqlite").exists()  # nothing of the agent's on local files
    import psycopg

    with psycopg.connect(url) as conn:
        prefixes = {row[0] for row in conn.execute("SELECT prefix FROM store").fetchall()}
        checkpoints = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    assert "agent_auth.approvals" in prefixes and any(p.startswith("agent_auth.vault.users.") for p in prefixes)
    assert checkpoints > 0


def test_the_demo_reads_the_store_from_the_environment(postgres, prefork, tmp_path):
    url = postgres.database("demo_env")
    proc = _run(prefork, [*DEMO, "--approve", "auto", "--no-color", "--data-dir", str(tmp_path / "demo")],
                {**demo_env(), STORE_ENV: url})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import psycopg

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] > 0


def test_a_bad_store_url_stops_the_demo_with_one_clear_line(prefork, tmp_path):
    proc = _run(prefork, [*DEMO, "--approve", "auto", "--no-color", "--store", "mysql://u:pw@db/x",
                 "--data-dir", str(tmp_path / "demo")], demo_env())
    assert proc.returncode == 2
    assert "unsupported store URL" in proc.stdout + proc.stderr and "pw@" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("script", ["approval_example.py", "combined_example.py"])
def test_examples_run_on_postgres_twice_without_mixing_runs(postgres, prefork, script):
    url = postgres.database("ex_" + script.split("_")[0])
    env = {**demo_env(), "LANGSMITH_TRACING": "false"}
    for _ in range(2):  # a durable store: the second run must not continue the first run's threads
        proc = _run(prefork, [script, "--store", url], env, cwd=ROOT / "examples")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "[tool]       transfer -> sent 250.00 EUR to Bob" in proc.stdout
