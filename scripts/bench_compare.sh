#!/usr/bin/env bash
# Encoder benchmark of all-MiniLM-L6-v2 on three engines: ours (cargo bench, release profile),
# PyTorch (sentence-transformers) and ONNX Runtime (the same checkpoint exported once with
# torch.onnx.export), on the same texts and the same number of threads, in alternating rounds
# (ours, PyTorch, ONNX Runtime, ours, ...). Two text sets: the 256 mixed-length benchmark
# sentences (benches/data/sentences.txt) and 64 long texts cut at the model's 256 tokens.
# Prints one table per set (texts/s, tokens/s, p50/p99 per call at batch 1, 8, 32, and ours
# against each reference); ONNX Runtime's agreement with sentence-transformers is checked once.
#   scripts/bench_compare.sh [--threads N] [--rounds N] [--variants "f16 int8"]
# --variants also times our reduced-precision weights (with their cosine to f32) in the rounds.
# The Python engines run in a throwaway venv (scripts/bench_pytorch.sh creates it, about 6 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2
rounds=3
variants=""
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
out="$PWD/target/bench/engines"
rm -rf "$out"
mkdir -p "$out"
[ -x target/debug/msp-mesh ] || cargo build --locked --workspace --all-targets
./target/debug/msp-mesh models pull all-minilm-l6-v2
model_dir="$PWD/models/store/all-minilm-l6-v2"
python3 scripts/bench_engines.py long-texts --out "$out/long_texts.txt"
# The throwaway venv (BENCH_VENV, default .venv-ref), and the release bench built before any timing.
venv="${BENCH_VENV:-$PWD/.venv-ref}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import torch, sentence_transformers, onnxruntime, onnx" 2>/dev/null ||
  "$venv/bin/pip" install -q torch transformers sentence-transformers safetensors numpy onnxruntime onnx
py="$venv/bin/python"
encoder_bench=$(cargo bench --locked --workspace --bench encoder --no-run --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "encoder" and m.get("executable"):
        print(m["executable"])')
for round in $(seq "$rounds"); do
  for set in mixed long; do
    texts=benches/data/sentences.txt
    [ "$set" = long ] && texts="$out/long_texts.txt"
    echo "== round $round, $set texts"
    for weights in f32 $variants; do
      RAYON_NUM_THREADS=$threads "$encoder_bench" --bench \
        --rounds 1 --weights "$weights" --sentences "$texts" \
        --json-out "$out/$set-ours-$weights-$round.json" | tail -4
    done
    HF_HUB_OFFLINE=1 "$py" scripts/bench_pytorch.py --model-dir "$model_dir" --sentences "$texts" \
      --threads "$threads" --rounds 1 --json-out "$out/$set-pytorch-$round.json" | tail -4
    BENCH_ONNX_CHECK=$([ "$round$set" = 1mixed ] && echo 1 || echo 0) \
      "$py" scripts/bench_onnx.py --model-dir "$model_dir" --onnx "$PWD/target/bench/minilm.onnx" \
      --sentences "$texts" --threads "$threads" --rounds 1 --json-out "$out/$set-onnx-$round.json" | tail -4
  done
done
python3 scripts/bench_engines.py table --title "mixed text (benches/data/sentences.txt)" "$out"/mixed-*.json
python3 scripts/bench_engines.py table --title "long texts (256 tokens each)" "$out"/long-*.json
