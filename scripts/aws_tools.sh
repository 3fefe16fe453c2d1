#!/usr/bin/env bash
# Installs the local AWS tooling the tests use into target/tools/aws (once; idempotent), from
# Python packages: cargo-lambda (the Lambda runtime and Invoke APIs of `cargo lambda watch`,
# and `cargo lambda build` packaging), moto's server (DynamoDB, CloudFormation and the other AWS
# APIs) and aws-sam-translator (the SAM template to CloudFormation, for scripts/stack_on_moto.py).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
SAM_TRANSLATOR_VERSION=1.115.0
venv=target/tools/aws
stamp="$venv/.installed-cargo-lambda-$CARGO_LAMBDA_VERSION-moto-$MOTO_VERSION-sam-$SAM_TRANSLATOR_VERSION"

if [[ ! -f "$stamp" ]]; then
  echo "installing cargo-lambda $CARGO_LAMBDA_VERSION, moto $MOTO_VERSION and aws-sam-translator $SAM_TRANSLATOR_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" "moto[server]==$MOTO_VERSION" \
    "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
  touch "$stamp"
fi
"$venv/bin/cargo-lambda" lambda --version >/dev/null
test -x "$venv/bin/moto_server"
"$venv/bin/python" -c "import samtranslator"
