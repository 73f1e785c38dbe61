import importlib
import subprocess
import sys

import langchain_agent_auth


def test_all_is_explicit_and_importable():
    assert langchain_agent_auth.__all__ == sorted(langchain_agent_auth.__all__, key=str)
    # one list: the TYPE_CHECKING imports are what type checkers read and what __all__ holds
    from langchain_agent_auth.core._lazy import public_imports

    assert set(langchain_agent_auth.__all__) == {*public_imports(langchain_agent_auth.__file__), "__version__"}
    for name in langchain_agent_auth.__all__:
        assert hasattr(langchain_agent_auth, name), name


def test_public_entry_points_have_docstrings():
    for name in langchain_agent_auth.__all__:
        obj = getattr(langchain_agent_auth, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_py_typed_shipped():
    spec = importlib.util.find_spec("langchain_agent_auth")
    assert spec and spec.origin
    import pathlib

    assert (pathlib.Path(spec.origin).parent / "py.typed").exists()


def test_cli_help_works():
    out = subprocess.run(
        [sys.executable, "-m", "langchain_agent_auth.cli", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "agent-auth" in out.stdout


def test_cli_starts_without_importing_langchain():
    code = "import sys, langchain_agent_auth.cli; print(any(m.startswith('langchain_core') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
