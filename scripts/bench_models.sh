#!/usr/bin/env bash
# DistilBERT sequence classification and T5 greedy generation, ours and PyTorch's
# (transformers) on the same checkpoints, inputs, machine and threads, one after the other;
# prints the ratios.
#   scripts/bench_models.sh [--threads N] [--rounds N] [--max-new-tokens N]
# The checkpoints are written once by scripts/bench_models_pytorch.py into target/bench/models:
# a DistilBERT classifier (the pulled minilm-l6-distilbert encoder with a seeded, untrained
# two-label head) and a t5-small-shaped T5 with seeded, untrained weights (no DistilBERT or
# T5 checkpoint ships in a package here; speed does not depend on the weights' values).
# PyTorch runs in the throwaway venv of scripts/bench_pytorch.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
rounds=2
max_new=32
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --max-new-tokens) max_new=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
out="$PWD/target/bench"
models="$out/models"
venv="${BENCH_VENV:-$PWD/.venv-ref}"
mkdir -p "$out"
[ -x target/debug/msp-mesh ] || cargo build --locked --workspace --all-targets
./target/debug/msp-mesh models pull minilm-l6-distilbert
if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch transformers sentence-transformers safetensors numpy
fi
py() { HF_HUB_OFFLINE=1 "$venv/bin/python" scripts/bench_models_pytorch.py "$@"; }
py make-checkpoints --distilbert-base models/store/minilm-l6-distilbert \
  --sentences benches/data/sentences.txt --out "$models"

# PyTorch first: our runs check their outputs against its JSON.
py distilbert --model-dir "$models/distilbert-cls" --sentences benches/data/sentences.txt \
  --threads "$threads" --rounds "$rounds" --json-out "$out/pytorch-distilbert.json"
py t5 --model-dir "$models/t5-small-shape" --inputs "$models/t5-inputs.json" \
  --max-new-tokens "$max_new" --threads "$threads" --rounds "$rounds" --json-out "$out/pytorch-t5.json"
ours() { RAYON_NUM_THREADS=$threads cargo bench --locked -p mesh-benches --bench model_paths -- "$@"; }
for weights in f32 f16 int8; do
  ours --task distilbert --model-dir "$models/distilbert-cls" --weights "$weights" \
    --rounds "$rounds" --reference "$out/pytorch-distilbert.json" \
    --json-out "$out/candle-distilbert-$weights.json"
done
ours --task t5 --model-dir "$models/t5-small-shape" --inputs "$models/t5-inputs.json" \
  --max-new-tokens "$max_new" --rounds "$rounds" --reference "$out/pytorch-t5.json" \
  --json-out "$out/candle-t5.json"

for weights in f32 f16 int8; do
  echo "== DistilBERT classification, ours ($weights) / PyTorch"
  python3 scripts/bench_ratio.py "$out/candle-distilbert-$weights.json" "$out/pytorch-distilbert.json"
done
echo "== T5 generation, ours / PyTorch"
python3 scripts/bench_ratio.py "$out/candle-t5.json" "$out/pytorch-t5.json"
