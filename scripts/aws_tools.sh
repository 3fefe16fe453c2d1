#!/usr/bin/env bash
# Installs the local AWS tooling the tests use into target/tools/aws (once; idempotent):
# cargo-lambda (the Lambda runtime and Invoke APIs of `cargo lambda watch`, and
# `cargo lambda build` packaging), from its Python package.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2
venv=target/tools/aws
stamp="$venv/.installed-cargo-lambda-$CARGO_LAMBDA_VERSION"

if [[ ! -f "$stamp" ]]; then
  echo "installing cargo-lambda $CARGO_LAMBDA_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
  touch "$stamp"
fi
"$venv/bin/cargo-lambda" lambda --version >/dev/null
