"""The local provider and ``agent-auth fga serve`` under load, each figure against a baseline
measured in the same run:

* ``/jwks`` p99 while 20 clients keep sending wrong passwords, over its idle p99 (target <= 2x:
  scrypt runs off the event loop and failed logins are throttled);
* 50 concurrent keep-alive clients on ``/token`` (client_credentials, RS256 JWT) and on
  ``fga serve`` ``check`` for ``--seconds``: requests, errors (anything but 200), p50/p99.

The token endpoint against node-oidc-provider is ``benchmarks/token_endpoint.py``.

Usage::

    python benchmarks/devserver_load.py [--seconds 30] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _servers import start_devserver, token_request

MODEL = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "document",
            "relations": {"viewer": {"this": {}}},
            "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}},
        },
    ],
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _worker(host: str, port: int, request: bytes, stop_at: float, lat: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


def load(url: str, request: bytes, *, seconds: float, concurrency: int) -> tuple[list[float], list[int]]:
    parts = urlsplit(url)
    lat: list[float] = []
    errors: list[int] = []

    async def main() -> None:
        stop_at = time.perf_counter() + seconds
        host, port = parts.hostname or "", parts.port or 80
        await asyncio.gather(*(_worker(host, port, request, stop_at, lat, errors) for _ in range(concurrency)))

    asyncio.run(main())
    return lat, errors


def report(label: str, lat: list[float], errors: list[int], seconds: float) -> None:
    print(
        f"  {label:34s} {len(lat):7d} requests  {len(lat) / seconds:7.0f} req/s  errors {len(errors)}"
        f"  p50 {pct(lat, 0.5) * 1000:6.1f} ms  p99 {pct(lat, 0.99) * 1000:6.1f} ms",
        flush=True,
    )


def _wrong_passwords(issuer: str, seconds: float, clients: int, out: Any) -> None:
    """Run in another process, so the attackers do not share the measuring client's GIL."""
    stop = time.perf_counter() + seconds
    counts = {"n": 0, "throttled": 0}

    async def attacker() -> None:
        async with httpx.AsyncClient(base_url=issuer, timeout=30) as client:
            while time.perf_counter() < stop:
                page = await client.get("/login")
                match = re.search(r'name="csrf" value="([^"]+)"', page.text)
                form = {"username": "alice", "password": "wrong", "csrf": match.group(1) if match else ""}
                r = await client.post("/login", data=form)
                counts["n"] += 1
                counts["throttled"] += r.status_code == 429

    async def main() -> None:
        await asyncio.gather(*(attacker() for _ in range(clients)))

    asyncio.run(main())
    out.put(counts)


def jwks_under_failed_logins(issuer: str, seconds: float) -> None:
    parts = urlsplit(issuer)
    jwks = f"GET /jwks HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    idle, _ = load(issuer, jwks, seconds=seconds, concurrency=4)
    queue: Any = multiprocessing.Queue()
    attackers = multiprocessing.Process(target=_wrong_passwords, args=(issuer, seconds + 1, 20, queue))
    attackers.start()
    time.sleep(0.5)  # let the attack start before measuring
    busy, _ = load(issuer, jwks, seconds=seconds, concurrency=4)
    attempts = queue.get(timeout=60)
    attackers.join(timeout=30)
    ratio = pct(busy, 0.99) / pct(idle, 0.99)
    print(f"  /jwks p99 idle {pct(idle, 0.99) * 1000:.1f} ms; with 20 failed-login clients "
          f"{pct(busy, 0.99) * 1000:.1f} ms ({attempts['n']} attempts, {attempts['throttled']} throttled)"
          f"  ratio = {ratio:.2f} (target <= 2)", flush=True)


def start_fga(db: pathlib.Path) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_agent_auth.cli", "fga", "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc, json.loads(proc.stdout.readline()[len("READY "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--jwks-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = start_devserver(pathlib.Path(tmp) / "dev")
        try:
            print(f"agent-auth dev (READY in {ours.ready_s:.2f} s)")
            jwks_under_failed_logins(ours.issuer, args.jwks_seconds)
            parts = urlsplit(ours.issuer)
            body = "grant_type=client_credentials&resource=urn%3Aexample%3Aapi&scope=api%3Aread"
            request = token_request(parts.hostname or "", parts.port or 80,
                                    (ours.info["client_id"], ours.info["client_secret"]), body)
            lat, errors = load(ours.issuer, request, seconds=args.seconds, concurrency=args.concurrency)
            report(f"/token x{args.concurrency}, {args.seconds:g} s", lat, errors, args.seconds)
        finally:
            ours.stop()
        proc, info = start_fga(pathlib.Path(tmp) / "fga.sqlite")
        try:
            url, headers = info["api_url"], {"Authorization": f"Bearer {info['api_token']}"}
            with httpx.Client(base_url=url, headers=headers) as client:
                for _ in range(100):
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        time.sleep(0.05)
                store = client.post("/stores", json={"name": "load"}).json()["id"]
                client.post(f"/stores/{store}/authorization-models", json=MODEL)
                client.post(f"/stores/{store}/write", json={"writes": {"tuple_keys": [
                    {"user": f"user:u{i}", "relation": "viewer", "object": f"document:{i % 50}"} for i in range(100)
                ]}})
            check = json.dumps({"tuple_key": {"user": "user:u7", "relation": "viewer", "object": "document:7"}})
            netloc = urlsplit(url).netloc
            request = (
                f"POST /stores/{store}/check HTTP/1.1\r\nHost: {netloc}\r\nAuthorization: Bearer {info['api_token']}"
                f"\r\nContent-Type: application/json\r\nContent-Length: {len(check)}\r\n\r\n{check}"
            ).encode()
            lat, errors = load(url, request, seconds=args.seconds, concurrency=args.concurrency)
            report(f"fga serve check x{args.concurrency}, {args.seconds:g} s", lat, errors, args.seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"(one run; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
