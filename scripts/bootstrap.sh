#!/usr/bin/env bash
# Creates .venv and installs simgate with everything its tests need.
# Idempotent: re-running only installs what changed (make calls it through a stamp file).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# Some machines carry a pip config naming local mirror folders that may be absent;
# pip warns once per package about them. Keep the output readable.
quiet_pip() { "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; return "${PIPESTATUS[0]}"; }
SYSTEM_PACKAGES=(libzbar0 fonts-noto-cjk fonts-dejavu-core)

missing_system_packages() {
    local missing=()
    for pkg in "${SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    echo "${missing[@]:-}"
}

missing="$(missing_system_packages)"
if [[ -n "${missing// /}" ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing system packages: $missing"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "bootstrap: missing system packages: $missing" >&2
        echo "bootstrap: install them with: sudo apt-get install $missing" >&2
        echo "bootstrap: (libzbar0 is needed by pyzbar; fonts-noto-cjk by the card generator)" >&2
        exit 1
    fi
fi

# Browser tests (tests/browser) drive the system's Chromium through Playwright; the
# browser Playwright would download is never used.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing chromium (for the browser tests)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
            || echo "bootstrap: could not install chromium: browser tests will be skipped" >&2
    else
        echo "bootstrap: /usr/bin/chromium not found and not root: browser tests will be skipped (sudo apt-get install chromium)"
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "bootstrap: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
quiet_pip .venv/bin/python -m pip install -q --upgrade "pip>=24" >/dev/null
echo "bootstrap: installing simgate and its dependencies (first run: ~1 minute)"
quiet_pip .venv/bin/python -m pip install -q -e ".[dev]"
# face_recognition declares a dependency on "dlib", which would compile from source for
# many minutes; the prebuilt dlib-bin wheel (a pyproject dependency) provides the module.
quiet_pip .venv/bin/python -m pip install -q --no-deps "face_recognition==1.3.0"
.venv/bin/python -c "import face_recognition, rapidocr, cv2, pyzbar.pyzbar, zxingcpp" \
    || { echo "bootstrap: import check failed" >&2; exit 1; }
echo "bootstrap: ready"
