"""Command-line startup, each a new process, in interleaved rounds:

* ``agent-auth --help`` against the bare interpreter (``python -c pass``, same venv);
* ``agent-auth dev`` to its READY line (warm data directory) against node-oidc-provider to
  its READY line, when the node setup is present.

Wall time per process (process start and imports: what a user waits for) and, because wall
time on a busy shared machine mostly measures the neighbours, the process's own CPU time
(user + system) until it exits or prints READY. Run: python benchmarks/cli_startup.py [--quick]
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from _servers import find_oidc_provider, prepare_oidc_provider, start_devserver, start_node

from benchmarks._util import Row, paired, print_table, single


def _process_ms(argv: list[str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of a process run to completion."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited with {proc.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def _cpu_ms_so_far(pid: int) -> float:
    """CPU ms a running process has used (Linux /proc; 10 ms resolution)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def run(quick: bool = False) -> list[Row]:
    rounds = 5 if quick else 15
    python = sys.executable
    helps, bares = [], []
    _process_ms([python, "-m", "langchain_agent_auth.cli", "--help"])  # file cache warm, as for a user
    for _ in range(rounds):
        helps.append(_process_ms([python, "-m", "langchain_agent_auth.cli", "--help"]))
        bares.append(_process_ms([python, "-c", "pass"]))
    label = "python -c pass (bare interpreter)"
    rows = [paired("cli: agent-auth --help", "wall ms, new process", [h[0] for h in helps], [b[0] for b in bares],
                   "ms", label, "goal <= 150 ms"),
            paired("cli: agent-auth --help", "CPU ms, new process", [h[1] for h in helps], [b[1] for b in bares],
                   "ms", label)]

    source = find_oidc_provider(None)
    setup = prepare_oidc_provider(source) if source is not None else None
    dev, node, cold, dev_cpu, node_cpu = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        first = start_devserver(pathlib.Path(tmp) / "dev")  # cold: keys generated, users seeded
        cold.append(first.ready_s * 1000)
        first.stop()
        for i in range(max(3, rounds // 3)):
            server = start_devserver(pathlib.Path(tmp) / "dev")
            dev.append(server.ready_s * 1000)
            dev_cpu.append(_cpu_ms_so_far(server.proc.pid))
            server.stop()
            if setup is not None:
                other = start_node(setup, pathlib.Path(tmp) / "fixtures")
                node.append(other.ready_s * 1000)
                node_cpu.append(_cpu_ms_so_far(other.proc.pid))
                other.stop()
            if i < 2:
                fresh = start_devserver(pathlib.Path(tmp) / f"cold{i}")
                cold.append(fresh.ready_s * 1000)
                fresh.stop()
    label = "node-oidc-provider to READY, same run" if node else ""
    rows.append(paired("cli: agent-auth dev", "wall ms to READY, new process, warm data dir", dev, node or None, "ms",
                       label, "goal <= 300 ms"))
    rows.append(paired("cli: agent-auth dev", "CPU ms to READY, new process, warm data dir", dev_cpu,
                       node_cpu or None, "ms", label))
    rows.append(single("cli: agent-auth dev", "wall ms to READY, new process, new data dir", cold, "ms"))
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
