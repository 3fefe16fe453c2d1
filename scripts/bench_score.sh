#!/usr/bin/env bash
# `msp-mesh score` at scale, measured (release build):
#   1. N anomaly records (default 1,000,000) as JSON lines: throughput, p50 per record, peak RSS
#      (bounded memory), killed at about a third and resumed: every id exactly once.
#   2. Pipeline overhead: `score --agent market-intelligence` over the encoder bench's sentences
#      (repeated to S lines, default 20,000) against the encoder's raw batch-32 throughput
#      (`cargo bench -p mesh-benches --bench encoder`) on the same sentences.
#   scripts/bench_score.sh [--records N] [--sentences S]
set -euo pipefail
cd "$(dirname "$0")/.."
records=1000000
sentences=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records=$2; shift 2 ;;
    --sentences) sentences=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
out="$PWD/target/bench/score"
mkdir -p "$out"
cargo build --locked --release --bin msp-mesh -p mesh-lambda
mesh="$PWD/target/release/msp-mesh"
store="$PWD/models/store"
common=(--models-dir "$store" --data-dir "$store/data" --cache-dir "$store/.cache" --auto-pull false)

python3 - "$records" "$out/records.jsonl" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        values = [99.0 if i % 3 == 0 and t == (i * 7) % 24 else 50.0 + ((i * 31 + t * 17) % 13) * 0.5
                  for t in range(24)]
        f.write(json.dumps({"id": f"r{i:07d}", "values": values}) + "\n")
PY
echo "== $records anomaly records ($(du -h "$out/records.jsonl" | cut -f1))"
rm -f "$out/answers.jsonl"
/usr/bin/time -f "peak RSS %M KiB, wall %e s" "$mesh" score --agent anomaly-detection \
  --input "$out/records.jsonl" --output "$out/answers.jsonl" "${common[@]}" &
pid=$!
until [ -f "$out/answers.jsonl" ] && [ "$(wc -l < "$out/answers.jsonl")" -ge $((records / 3)) ]; do sleep 0.5; done
pkill -KILL -f "msp-mesh score --agent anomaly-detection" || true
wait $pid || true
echo "killed after $(wc -l < "$out/answers.jsonl") complete answers"
/usr/bin/time -f "peak RSS %M KiB, wall %e s" "$mesh" score --agent anomaly-detection \
  --input "$out/records.jsonl" --output "$out/answers.jsonl" --resume "${common[@]}"
python3 - "$out/answers.jsonl" "$records" <<'PY'
import json, sys
ids = [json.loads(line)["id"] for line in open(sys.argv[1])]
n = int(sys.argv[2])
assert ids == [f"r{i:07d}" for i in range(n)], "ids differ"
print(f"{len(ids)} answers, every id exactly once, in input order")
PY

echo "== pipeline overhead: market-intelligence over $sentences sentences"
python3 - benches/data/sentences.txt "$sentences" "$out/sentences.jsonl" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1]) if l.strip()]
with open(sys.argv[3], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": i, "query": lines[i % len(lines)]}) + "\n")
PY
rm -f "$out/sentences.out.jsonl"
"$mesh" score --agent market-intelligence --input "$out/sentences.jsonl" \
  --output "$out/sentences.out.jsonl" "${common[@]}"
cargo bench --locked -p mesh-benches --bench encoder -- --rounds 2 --json-out "$out/encoder.json" | tail -5
