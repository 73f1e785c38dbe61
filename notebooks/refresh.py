"""Execute the notebooks top to bottom and save them with their outputs (what GitHub shows).

    python notebooks/refresh.py                      # every notebook
    python notebooks/refresh.py notebooks/vault.ipynb

Run it after changing a notebook or an API a notebook uses: the tests execute every notebook
again and compare its output with what is committed. The kernel is this Python (the
current virtualenv), whatever kernels Jupyter knows about.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Iterator, Sequence

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
KERNEL = "agent-auth-notebooks"


@contextlib.contextmanager
def this_python_kernel(launcher: Sequence[str] = ()) -> Iterator[str]:
    """A kernelspec running ``sys.executable`` (``python LAUNCHER... -m ipykernel_launcher``),
    visible to Jupyter for the duration (a user-level ``python3`` kernel may point to another
    interpreter)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = pathlib.Path(tmp, "kernels", KERNEL)
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, *launcher, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python",
        }))
        saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join([tmp, *([saved] if saved else [])])
        try:
            yield KERNEL
        finally:
            if saved is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = saved


def execute(path: pathlib.Path, kernel_name: str, *, timeout: int = 120) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel, from the notebooks directory."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    for cell in nb.cells:  # one output per stream: how the kernel split the text depends on timing
        merged: list[nbformat.NotebookNode] = []
        for out in cell.get("outputs", []):
            if merged and out.output_type == "stream" and merged[-1].output_type == "stream" \
                    and merged[-1].name == out.name:
                merged[-1].text += out.text
            else:
                merged.append(out)
        if "outputs" in cell:
            cell.outputs = merged
    # The committed file names the usual kernel and no interpreter version: the same file everywhere.
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(paths: list[str]) -> None:
    with this_python_kernel() as kernel:
        for path in [pathlib.Path(p) for p in paths] or sorted(HERE.glob("*.ipynb")):
            nbformat.write(execute(path, kernel), path)
            print("executed", path)


if __name__ == "__main__":
    main(sys.argv[1:])
