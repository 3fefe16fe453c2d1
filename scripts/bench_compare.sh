#!/usr/bin/env bash
# Encoder benchmark, ours and PyTorch's (sentence-transformers) on the same sentences,
# the same machine and the same number of threads, one after the other; prints the ratio.
#   scripts/bench_compare.sh [--threads N] [--rounds N]
# Ours runs with `cargo bench` (release profile); PyTorch in a throwaway venv
# (scripts/bench_pytorch.sh creates it on first use, about 6 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
out="$PWD/target/bench"
mkdir -p "$out"
[ -x target/debug/msp-mesh ] || cargo build --locked --workspace --all-targets
./target/debug/msp-mesh models pull all-minilm-l6-v2
RAYON_NUM_THREADS=$threads cargo bench --locked -p mesh-benches --bench encoder -- \
  --rounds "$rounds" --json-out "$out/candle.json"
bash scripts/bench_pytorch.sh --model-dir models/store/all-minilm-l6-v2 \
  --sentences benches/data/sentences.txt --threads "$threads" --rounds "$rounds" \
  --json-out "$out/pytorch.json"
python3 scripts/bench_ratio.py "$out/candle.json" "$out/pytorch.json"
