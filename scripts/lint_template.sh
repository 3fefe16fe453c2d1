#!/usr/bin/env bash
# Lints the SAM template with cfn-lint (pinned), installed once into a venv under target/tools,
# then checks least privilege with scripts/check_iam.py (every granted action is called).
#
# Usage: scripts/lint_template.sh [TEMPLATE]   (default lambda/deploy/template.yaml)
# Exit status: cfn-lint's (non-zero on any error or warning), 1 when the tool cannot be installed.
# Environment: PYTHON (default python3).
set -euo pipefail

CFN_LINT_VERSION=1.58.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/target/tools/cfn-lint"
TEMPLATE="${1:-$ROOT/lambda/deploy/template.yaml}"
PYTHON="${PYTHON:-python3}"

installed_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("cfn-lint"))' 2>/dev/null || true
}

if [[ "$(installed_version)" != "$CFN_LINT_VERSION" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || { echo "lint_template: cannot create a venv with $PYTHON -m venv (install python3-venv)" >&2; exit 1; }
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION" \
        || { echo "lint_template: cannot install cfn-lint==$CFN_LINT_VERSION with pip" >&2; exit 1; }
fi

# Errors (E), warnings (W) and informational findings (I) are printed; cfn-lint exits non-zero
# for errors and warnings (bit flags 2 and 4), 0 when the template is clean or has only I findings.
"$VENV/bin/cfn-lint" --non-zero-exit-code warning -- "$TEMPLATE"
# Least privilege: no function is granted an action the code never calls.
"$VENV/bin/python" "$ROOT/scripts/check_iam.py" "$TEMPLATE" >/dev/null
