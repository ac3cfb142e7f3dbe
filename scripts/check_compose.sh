#!/usr/bin/env bash
# Validates docker-compose.yml (or the file given): with the compose client where one is
# installed (`docker compose`, else `docker-compose`; `config` needs no Docker engine),
# otherwise with a structural check in Python. Exits non-zero on an invalid file.
#
#   scripts/check_compose.sh [FILE]
#   CHECK_COMPOSE_CLIENT=python scripts/check_compose.sh   # force the Python check
#                                                          # (auto|docker|docker-compose|python)
set -euo pipefail
cd "$(dirname "$0")/.."

FILE="${1:-docker-compose.yml}"
CLIENT="${CHECK_COMPOSE_CLIENT:-auto}"
[[ -f "$FILE" ]] || { echo "check_compose: $FILE not found" >&2; exit 2; }

# The file refuses to load without its secrets; any value will do to validate it.
export SIMGATE_BLOB_KEY=dummy SIMGATE_ID_HASH_KEY=dummy SIMGATE_LOGISTICS_TOKEN=dummy

if [[ "$CLIENT" == auto || "$CLIENT" == docker ]] && docker compose version >/dev/null 2>&1; then
    docker compose -f "$FILE" config -q
    echo "check_compose: $FILE is valid ($(docker compose version --short 2>/dev/null || echo 'docker compose'))"
    exit 0
fi
if [[ "$CLIENT" == auto || "$CLIENT" == docker-compose ]] && command -v docker-compose >/dev/null; then
    docker-compose -f "$FILE" config -q
    echo "check_compose: $FILE is valid (docker-compose $(docker-compose version --short 2>/dev/null || true))"
    exit 0
fi
if [[ "$CLIENT" != auto && "$CLIENT" != python ]]; then
    echo "check_compose: compose client '$CLIENT' not available" >&2
    exit 2
fi

if [[ "$CLIENT" == python ]]; then
    echo "check_compose: CHECK_COMPOSE_CLIENT=python: parsed with Python YAML only"
else
    echo "check_compose: compose client not installed: parsed with Python YAML only"
fi

PY=""
for candidate in .venv/bin/python python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import yaml" 2>/dev/null; then
        PY="$candidate"
        break
    fi
done

if [[ -z "$PY" ]]; then
    # No YAML parser anywhere: the least that a compose file must look like.
    echo "check_compose: no PyYAML either: only a minimal text check" >&2
    if grep -n $'^[ ]*\t' "$FILE"; then
        echo "check_compose: $FILE: tabs in indentation" >&2
        exit 1
    fi
    grep -q '^services:' "$FILE" || { echo "check_compose: $FILE: no top-level services:" >&2; exit 1; }
    echo "check_compose: $FILE passed the minimal check"
    exit 0
fi

"$PY" - "$FILE" <<'PYTHON'
"""Structural check of a compose file, for machines without a compose client."""

import re
import sys

import yaml

TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}")

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
errors = []

try:
    doc = yaml.safe_load(text)
except yaml.YAMLError as exc:
    sys.exit(f"check_compose: {path}: not valid YAML: {exc}")

# A "$" must be "$$", "$NAME" or a well-formed "${...}".
for lineno, line in enumerate(text.splitlines(), 1):
    if line.lstrip().startswith("#"):
        continue
    rest = INTERPOLATION.sub("", line.replace("$$", ""))
    if re.search(r"\$(?![A-Za-z_])", rest):
        errors.append(f"line {lineno}: invalid interpolation (write $$ for a literal $)")

if not isinstance(doc, dict):
    sys.exit(f"check_compose: {path}: the top level must be a mapping")
for key in doc:
    if key not in TOP_LEVEL and not str(key).startswith("x-"):
        errors.append(f"unknown top-level key {key!r}")

services = doc.get("services")
if not isinstance(services, dict) or not services:
    sys.exit(f"check_compose: {path}: no services")
volumes = doc.get("volumes") or {}
if not isinstance(volumes, dict):
    errors.append("volumes: must be a mapping")
    volumes = {}

for name, svc in services.items():
    where = f"services.{name}"
    if not isinstance(svc, dict):
        errors.append(f"{where}: must be a mapping")
        continue
    if "image" not in svc and "build" not in svc:
        errors.append(f"{where}: needs image or build")
    deps = svc.get("depends_on") or []
    if isinstance(deps, dict):
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition", "service_started")
            if condition not in CONDITIONS:
                errors.append(f"{where}.depends_on.{dep}: unknown condition {condition!r}")
            if condition == "service_healthy" and dep in services:
                if not (services[dep] or {}).get("healthcheck"):
                    errors.append(f"{where}.depends_on.{dep}: waits for health, {dep} has no healthcheck")
    elif not isinstance(deps, list):
        errors.append(f"{where}.depends_on: must be a list or a mapping")
        deps = []
    for dep in deps:
        if dep not in services:
            errors.append(f"{where}.depends_on: unknown service {dep!r}")
    for key in ("ports", "volumes", "command", "healthcheck", "environment"):
        value = svc.get(key)
        if key in ("ports", "volumes") and value is not None and not isinstance(value, list):
            errors.append(f"{where}.{key}: must be a list")
        if key == "environment" and value is not None and not isinstance(value, (dict, list)):
            errors.append(f"{where}.environment: must be a mapping or a list")
        if key == "healthcheck" and value is not None:
            if not isinstance(value, dict) or not value.get("test"):
                errors.append(f"{where}.healthcheck: needs a test")
    for mount in svc.get("volumes") or []:
        if isinstance(mount, str):
            source = mount.split(":", 1)[0] if ":" in mount else ""
            kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
        elif isinstance(mount, dict):
            source, kind = mount.get("source", ""), mount.get("type", "volume")
        else:
            errors.append(f"{where}.volumes: bad entry {mount!r}")
            continue
        if kind == "volume" and source and source not in volumes:
            errors.append(f"{where}.volumes: named volume {source!r} not declared at the top level")

if errors:
    print(f"check_compose: {path} is invalid:", file=sys.stderr)
    for error in errors:
        print(f"  {error}", file=sys.stderr)
    sys.exit(1)
print(f"check_compose: {path} passed the structural check ({len(services)} services)")
PYTHON
