#!/usr/bin/env bash
# Load test on this machine: a release `msp-mesh serve` on a free loopback port (its own state
# database under target/load/), then 1,000 requests at 10 and at 100 concurrent clients to a
# classification route (/threat-intelligence/analyze) and a numeric route (/anomaly/detect),
# each request on a new connection as Apache Bench does; then overload: a server bounded to 16
# model requests in flight against 64 clients (only 429s with retry-after beyond the bound).
# Prints throughput, p50/p95/p99 latency, the admitted requests' p95, errors and the servers'
# peak RSS (also in target/load/load.jsonl). Needs `msp-mesh prepare` done once.
#   scripts/load_test.sh [--requests N] [--concurrency 10,100]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/target/load"
mkdir -p "$out"
rm -f "$out/load.jsonl" "$out/state.db"*

cargo build --release --workspace --bins --benches --locked
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/target/release/msp-mesh" serve --addr "127.0.0.1:$port" --state-db "$out/state.db" \
  < /dev/null 2> "$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 1
done
cargo bench --workspace --locked --bench load -- --port "$port" --jsonl "$out/load.jsonl" "$@"
echo "server peak RSS: $(grep VmHWM /proc/$server/status)"
kill $server; wait $server 2>/dev/null || true

# Overload: a server bounded to 16 model requests in flight, 4x as many clients (64) on the
# numeric route, 1,000 requests, then the same 1,000 at 16 clients (at the bound) for the
# admitted requests' p95 to compare with.
rm -f "$out/state.db"*
"$root/target/release/msp-mesh" serve --addr "127.0.0.1:$port" --state-db "$out/state.db" \
  --max-inflight 16 < /dev/null 2> "$out/server-overload.log" &
server=$!
for _ in $(seq 1 600); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 1
done
cargo bench --workspace --locked --bench load -- --port "$port" --jsonl "$out/load.jsonl" \
  --routes numeric --concurrency 16,64 --requests 1000
echo "overload server peak RSS: $(grep VmHWM /proc/$server/status)"
python3 - "$out/load.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| route | path | clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms | admitted p95 ms | 429 without retry-after |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['route']} | {r['path']} | {r['concurrency']} | {r['requests']} | {r['errors']} {r['errors_by_status'] or ''} | "
          f"{r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
          f"{r['admitted_p95_ms']:.1f} | {r['refused_without_retry_after']} |")
PY
