"""The deployment files: docker-compose.yml, the Dockerfile and scripts/check_compose.sh.

Structure only, parsed with PyYAML: no Docker engine is needed. The compose client's own
validation runs where a client is installed (``docker compose`` or ``docker-compose``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHECK = ROOT / "scripts" / "check_compose.sh"

STORES = {"redis", "postgres"}
APP = {"migrate", "lookup", "api", "worker", "beat", "flower"}
DATA_DIR = "/var/lib/simgate"
REQUIRED_SECRETS = ("SIMGATE_BLOB_KEY", "SIMGATE_ID_HASH_KEY", "SIMGATE_LOGISTICS_TOKEN")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def command_of(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_every_process_has_a_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= STORES | APP


def test_app_services_share_one_image(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api.get("image")
    assert api.get("build")
    for name in APP:
        assert services[name].get("image") == api["image"], name
        assert services[name].get("build") == api["build"], name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("api", "simgate api --host 0.0.0.0 --port 8000"),
        ("worker", "simgate worker --queues vision,default"),
        ("beat", "simgate beat"),
        ("migrate", "simgate db upgrade"),
        ("lookup", "python -m services.lookup --registry "),
        ("flower", "celery --app services.workers.celery_app:app flower --port=5555"),
    ],
)
def test_commands(services: dict[str, dict[str, Any]], name: str, expected: str) -> None:
    assert command_of(services[name]).startswith(expected)


def test_lookup_registry_is_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    args = services["lookup"]["command"]
    registry = args[args.index("--registry") + 1]
    # The image's working directory holds a copy of fixtures/.
    assert registry.startswith("fixtures/")
    assert (ROOT / registry).is_file(), f"the lookup container would not start: {registry} missing"


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "beat", "migrate"):
        assert "container_name" not in services[name], name
    for port in services["worker"].get("ports", []):
        published = port.get("published") if isinstance(port, dict) else str(port).count(":")
        assert not published, f"worker publishes a host port ({port}): --scale would collide"


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("redis", "postgres", "api", "lookup"):
        check = services[name].get("healthcheck") or {}
        assert check.get("test"), name
        assert not check.get("disable"), name
    for name, port in (("api", 8000), ("lookup", 8001)):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in test, name


def test_startup_order(services: dict[str, dict[str, Any]]) -> None:
    assert depends(services["migrate"]) == {"postgres": "service_healthy"}
    for name in ("api", "worker"):
        assert depends(services[name]) == {
            "redis": "service_healthy",
            "postgres": "service_healthy",
            "migrate": "service_completed_successfully",
            "lookup": "service_healthy",
        }, name
    for name, service in services.items():
        for dep, condition in depends(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health"
    assert services["migrate"].get("restart") in ("no", None)


def test_secrets_are_required_never_written(services: dict[str, dict[str, Any]]) -> None:
    for name in APP:
        env = services[name]["environment"]
        assert env["SIMGATE_ENV"] == "production", name
        for key in REQUIRED_SECRETS:
            # ${KEY:?message}: compose refuses to start without the key.
            assert re.fullmatch(rf"\$\{{{key}:\?.+\}}", env[key]), f"{name}: {key}"
        assert env["SIMGATE_DATA_DIR"] == DATA_DIR
        assert env["SIMGATE_LOOKUP_URL"] == "http://lookup:8001"
        assert env["SIMGATE_REDIS_URL"].startswith("redis://redis:")
        assert env["SIMGATE_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_api_and_worker_share_the_blobs(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert {"pgdata", "blobs"} <= set(compose["volumes"])
    for name in ("api", "worker"):
        assert f"blobs:{DATA_DIR}" in services[name]["volumes"], name
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, re.M)
    for package in ("libzbar0", "fonts-noto-cjk", "fonts-dejavu-core"):
        assert package in text
    assert 'pip install --no-deps "face_recognition==1.3.0"' in text
    assert "flower==" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users, "the processes must not run as root"
    assert users[-1] not in ("root", "0"), "the processes must not run as root"


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", ".env"} <= ignored
    sources = re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") not in ignored, f"{source} is copied but ignored"


def run_check(*args: str, client: str = "auto") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECK), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CHECK_COMPOSE_CLIENT": client},
    )


def compose_client() -> str | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return "docker"
    return "docker-compose" if shutil.which("docker-compose") else None


def test_check_script_python_fallback(tmp_path: Path) -> None:
    ok = run_check(client="python")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "compose.yml"
    broken.write_text(
        "services:\n  api:\n    image: x\n    depends_on: [nowhere]\n", encoding="utf-8"
    )
    bad = run_check(str(broken), client="python")
    assert bad.returncode != 0
    assert "nowhere" in bad.stderr


def test_check_script_with_compose_client() -> None:
    client = compose_client()
    if client is None:
        pytest.skip("no compose client (docker compose / docker-compose): structure checked only")
    proc = run_check(client=client)
    assert proc.returncode == 0, proc.stdout + proc.stderr
