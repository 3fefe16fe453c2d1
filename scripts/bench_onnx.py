#!/usr/bin/env python3
"""ONNX Runtime side of the MiniLM encoder benchmark (CPU), the engine of
text-embeddings-inference's CPU backend and of fastembed.

Usage (scripts/bench_compare.sh runs it in its throwaway venv):
    python scripts/bench_onnx.py --model-dir MODEL_DIR --onnx target/bench/minilm.onnx \
        --sentences benches/data/sentences.txt --threads 2 --rounds 1 --json-out FILE

The first run exports the checkpoint once with torch.onnx.export (the transformer only:
input_ids, attention_mask, token_type_ids -> last_hidden_state, dynamic batch and sequence
axes, opset 17) and checks the exported graph against sentence-transformers on every
sentence (min cosine printed and stored in the JSON). Each timed call does what
SentenceTransformer.encode does: tokenise (the checkpoint's fast tokenizer, padding to the
batch's longest, truncation at max_seq_length), run the session (graph optimisations
ORT_ENABLE_ALL, --threads intra-op threads, one inter-op thread, sequential execution), mean
pooling over the attention mask, L2 normalisation. Timing and JSON keys are those of
scripts/bench_pytorch.py (time_batches), plus the raw per-batch latencies.
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_pytorch import read_texts, time_batches  # noqa: E402


def export(model_dir, onnx_path):
    """Exports the checkpoint's transformer to ONNX, once."""
    import torch
    from transformers import AutoModel

    class Transformer(torch.nn.Module):
        """The checkpoint's transformer with positional inputs and one output, for the export."""

        def __init__(self):
            super().__init__()
            self.model = AutoModel.from_pretrained(model_dir).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = Transformer().eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    tmp = onnx_path + ".part"
    torch.onnx.export(
        model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), tmp,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                      "last_hidden_state": axes},
        opset_version=17, do_constant_folding=True, dynamo=False,
    )
    os.replace(tmp, onnx_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--onnx", required=True, help="exported graph (written on first use)")
    ap.add_argument("--sentences", default="benches/data/sentences.txt")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    if not os.path.exists(args.onnx):
        os.makedirs(os.path.dirname(os.path.abspath(args.onnx)), exist_ok=True)
        export(args.model_dir, args.onnx)
        print(f"exported {args.onnx}")

    t0 = time.perf_counter()
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer
    import_s = time.perf_counter() - t0

    sentences = read_texts(args.sentences)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]

    t0 = time.perf_counter()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    cold_load_s = time.perf_counter() - t0
    with open(os.path.join(args.model_dir, "sentence_bert_config.json")) as f:
        max_len = int(json.load(f)["max_seq_length"])

    def enc(batch):
        t = tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="np")
        feed = {k: t[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = session.run(None, feed)[0]
        mask = feed["attention_mask"][:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    tok_counts = [len(tokenizer(s, truncation=True, max_length=max_len)["input_ids"]) for s in sentences]
    print(f"onnxruntime {ort.__version__}, {args.onnx}, threads={args.threads}, "
          f"sentences={len(sentences)} tokens={sum(tok_counts)} cold_load={cold_load_s:.3f}s")

    agreement = None
    if os.environ.get("BENCH_ONNX_CHECK", "1") == "1":
        from sentence_transformers import SentenceTransformer
        reference = SentenceTransformer(args.model_dir, device="cpu").encode(
            sentences, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        ours = np.concatenate([enc(sentences[i:i + 32]) for i in range(0, len(sentences), 32)])
        cosines = (ours * reference).sum(axis=1)
        agreement = {"min_cosine": float(cosines.min()),
                     "max_abs_diff": float(np.abs(ours - reference).max())}
        print(f"vs sentence-transformers: min cosine {agreement['min_cosine']:.6f}, "
              f"largest difference {agreement['max_abs_diff']:.1e}")

    results, single = time_batches(sentences, tok_counts, batch_sizes, args.warmup, args.rounds, enc)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2", "engine": "onnxruntime",
        "device": "cpu", "threads": args.threads, "rounds": args.rounds, "warmup": args.warmup,
        "num_sentences": len(sentences), "total_tokens": sum(tok_counts), "max_seq_length": max_len,
        "import_s": import_s, "cold_load_s": cold_load_s, "peak_rss_mb": peak_rss_mb,
        "batch_sizes": results, "single_sentence": single,
        "agreement_with_sentence_transformers": agreement,
        "generated_with": {"python": platform.python_version(), "onnxruntime": ort.__version__},
    }
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
