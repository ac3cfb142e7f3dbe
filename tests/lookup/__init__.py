"""Helpers shared by the lookup tests: test people, a registry file, and the service run
as a real subprocess (``python -m services.lookup``) on a free port."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0


def embedding(seed: int) -> list[float]:
    """A deterministic 128-d vector of the scale of dlib's embeddings."""
    rng = random.Random(seed)
    return [round(rng.uniform(-0.2, 0.2), 6) for _ in range(128)]


def shifted(vector: list[float], by: float) -> list[float]:
    """``vector`` moved by exactly ``by`` (euclidean) along the first axis."""
    return [vector[0] + by, *vector[1:]]


# Numbers only need the format here (the lookup does not check the GB 11643 checksum).
ZHANG = {"id_number": "110101199003070011", "name": "张三", "status": "valid"}
LI = {"id_number": "11010119900307002X", "name": "李四", "status": "valid"}  # no photo
WANG = {"id_number": "110101199003070038", "name": "王五", "status": "cancelled"}
ZHAO = {"id_number": "110101199003070046", "name": "赵六", "status": "deceased"}
UNKNOWN_ID = "110101199003070054"
ZHANG_FACE = embedding(1)
ZHAO_FACE = embedding(4)

PEOPLE: list[dict[str, Any]] = [
    {**ZHANG, "photo_embedding": ZHANG_FACE},
    {**LI, "photo_embedding": None},
    {**WANG, "photo_embedding": embedding(3)},
    {**ZHAO, "photo_embedding": ZHAO_FACE},
]
ALL_IDS = [p["id_number"] for p in PEOPLE] + [UNKNOWN_ID]


def write_registry(path: Path, people: list[dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps({"version": 1, "people": people}, ensure_ascii=False), encoding="utf-8"
    )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LookupProcess:
    """A running ``python -m services.lookup``; its stdout and stderr go to ``log_path``."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_lookup(registry: Path, workdir: Path, *extra: str) -> LookupProcess:
    """Start the service and wait for /healthz; fail the test with its output otherwise."""
    port = free_port()
    log_path = workdir / f"lookup-{port}.log"
    cmd = [sys.executable, "-m", "services.lookup", "--registry", str(registry)]
    cmd += ["--port", str(port), "--log-level", "info", *extra]
    # A file, not a pipe: nobody reads while tests run, and a full pipe would block it.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    service = LookupProcess(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"lookup service exited with {proc.returncode} before answering /healthz; "
                f"output:\n{service.output()}"
            )
        try:
            if httpx.get(f"{service.url}/healthz", timeout=1.0).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    service.stop()
    pytest.fail(
        f"lookup service did not answer /healthz within {START_TIMEOUT_S:.0f} s "
        f"({' '.join(cmd)}); output:\n{service.output()}"
    )
