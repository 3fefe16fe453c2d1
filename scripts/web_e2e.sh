#!/usr/bin/env bash
# The dashboard's end-to-end tests (web/e2e): Debian's Chromium, headless, driven by
# playwright-core against the real server (target/debug/msp-mesh, models from `prepare`).
# Installs chromium with apt-get when /usr/bin/chromium is missing and playwright-core with
# `npm ci` (the lock file pins it). Screenshots land in target/e2e/. forms.test.mjs checks the
# pages' CSV reading in Node first.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium >/dev/null; }
fi
(cd web/e2e && npm ci --no-audit --no-fund --loglevel=error)
MESH_BIN="${MESH_BIN:-target/debug/msp-mesh}" \
  node --test --test-concurrency=1 web/e2e/forms.test.mjs web/e2e/dashboard.test.mjs
