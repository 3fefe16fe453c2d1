#!/usr/bin/env bash
# Encoder benchmark, ours (f32, f16 and int8 weights) and PyTorch's (sentence-transformers) on the
# same sentences, the same machine and the same number of threads, one after the other; prints
# the ratios, and the reduced-precision embeddings' cosine to the f32 ones.
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
for weights in f32 f16 int8; do
  RAYON_NUM_THREADS=$threads cargo bench --locked -p mesh-benches --bench encoder -- \
    --rounds "$rounds" --weights "$weights" --json-out "$out/candle-$weights.json"
done
bash scripts/bench_pytorch.sh --model-dir models/store/all-minilm-l6-v2 \
  --sentences benches/data/sentences.txt --threads "$threads" --rounds "$rounds" \
  --json-out "$out/pytorch.json"
for weights in f32 f16 int8; do
  echo "== all-MiniLM-L6-v2, ours ($weights) / PyTorch"
  python3 scripts/bench_ratio.py "$out/candle-$weights.json" "$out/pytorch.json"
done
