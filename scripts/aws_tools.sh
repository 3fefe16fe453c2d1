#!/usr/bin/env bash
# Installs the local AWS tooling the tests use into target/tools/aws (once; idempotent), from
# Python packages: cargo-lambda (the Lambda runtime and Invoke APIs of `cargo lambda watch`,
# and `cargo lambda build` packaging) and moto's server (DynamoDB and the other AWS APIs).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
venv=target/tools/aws
stamp="$venv/.installed-cargo-lambda-$CARGO_LAMBDA_VERSION-moto-$MOTO_VERSION"

if [[ ! -f "$stamp" ]]; then
  echo "installing cargo-lambda $CARGO_LAMBDA_VERSION and moto $MOTO_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" "moto[server]==$MOTO_VERSION"
  touch "$stamp"
fi
"$venv/bin/cargo-lambda" lambda --version >/dev/null
test -x "$venv/bin/moto_server"
