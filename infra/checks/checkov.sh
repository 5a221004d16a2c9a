#!/usr/bin/env bash
# Offline static security scan of infra/terraform with checkov.
#
# checkov pins many of its dependencies tightly, so it lives in its own virtualenv
# (.venv-checkov, gitignored) instead of the app's .venv; the install is cached there and
# only redone when CHECKOV_VERSION changes. The scan itself never touches the network:
# --skip-download stops checkov fetching policies or guidelines, and no API key is given.
#
# Exit codes: 0 scan passed, 1 findings, 3 checkov could not be installed (callers turn
# that into a visible skip, never a pass).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.2.533}"
STAMP="$VENV/.installed-$(printf '%s' "$CHECKOV_VERSION" | tr -c 'A-Za-z0-9.' '_')"
PYTHON="${PYTHON:-python3}"

if [[ ! -f "$STAMP" ]]; then
    echo "checkov.sh: installing checkov $CHECKOV_VERSION into $VENV (cached after the first run)" >&2
    if ! { test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"; } \
        || ! "$VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION" >&2; then
        echo "checkov.sh: SKIP: checkov could not be installed into $VENV" >&2
        exit 3
    fi
    touch "$STAMP"
fi

# Checkov phones home for its version check and run metadata unless told not to.
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export ANSWER_NO_TELEMETRY=1
exec "$VENV/bin/checkov" \
    --directory "${CHECKOV_DIR:-$ROOT/infra/terraform}" \
    --framework terraform \
    --skip-download \
    --compact \
    "$@"
