#!/usr/bin/env python3
"""The encoder benchmark's three-engine table, and its long-input text set.

    python3 scripts/bench_engines.py long-texts --sentences benches/data/sentences.txt \
        --out target/bench/long_texts.txt [--count 64] [--min-words 260]
    python3 scripts/bench_engines.py table --title "mixed text" FILE.json ...

`long-texts` writes texts of at least --min-words words (consecutive benchmark sentences
joined, text i starting at sentence 4*i), so every one is cut at the model's 256 tokens.

`table` reads the per-round JSON files written by benches/benches/encoder.rs,
scripts/bench_pytorch.py and scripts/bench_onnx.py (one file per engine per round; the
rounds alternate between engines), pools every engine's per-batch latencies over its rounds
and prints, per batch size: sentences/s and tokens/s (texts and real tokens over the summed
call time), p50 and p99 per call in ms, and ours against ONNX Runtime and PyTorch (throughput
ratio, > 1 means ours is faster). Markdown, ready for the README.
"""
import argparse
import json
import sys
from collections import defaultdict

LABELS = {"ours-f32": "ours", "pytorch": "PyTorch", "onnxruntime": "ONNX Runtime"}


def percentile(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def long_texts(args):
    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    texts = []
    for i in range(args.count):
        words, j = [], 4 * i
        while len(words) < args.min_words:
            words += sentences[j % len(sentences)].split()
            j += 1
        texts.append(" ".join(words))
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    print(f"wrote {len(texts)} texts of at least {args.min_words} words to {args.out}")


def pooled(files):
    """engine -> batch size -> {texts, tokens, latencies}, summed over the engine's rounds."""
    engines = defaultdict(lambda: defaultdict(lambda: {"texts": 0, "tokens": 0, "lat": []}))
    for path in files:
        with open(path) as f:
            run = json.load(f)
        for row in run["batch_sizes"]:
            cell = engines[run["engine"]][row["batch_size"]]
            batches_per_pass = -(-run["num_sentences"] // row["batch_size"])
            passes = row["batches_timed"] // batches_per_pass
            cell["texts"] += run["num_sentences"] * passes
            cell["tokens"] += run["total_tokens"] * passes
            cell["lat"] += row["latencies_ms"]
    return engines


def table(args):
    engines = pooled(args.files)
    order = [e for e in LABELS if e in engines] + sorted(e for e in engines if e not in LABELS)
    print(f"\n{args.title}: texts/s, tokens/s, p50 / p99 ms per call\n")
    head = "| batch | " + " | ".join(LABELS.get(e, e) for e in order)
    ref = [e for e in ("onnxruntime", "pytorch") if e in engines and e != "ours-f32"]
    head += "".join(f" | ours / {LABELS[e]}" for e in ref if "ours-f32" in engines) + " |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for batch in sorted(next(iter(engines.values()))):
        cells, speed = [], {}
        for e in order:
            c = engines[e][batch]
            secs = sum(c["lat"]) / 1e3
            speed[e] = c["texts"] / secs
            cells.append(f"{speed[e]:.1f}/s, {c['tokens'] / secs:.0f} tok/s, "
                         f"{percentile(c['lat'], 50):.1f} / {percentile(c['lat'], 99):.1f} ms")
        ratios = [f"{speed['ours-f32'] / speed[e]:.2f}" for e in ref if "ours-f32" in engines]
        print(f"| {batch} | " + " | ".join(cells + ratios) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    lt = sub.add_parser("long-texts")
    lt.add_argument("--sentences", default="benches/data/sentences.txt")
    lt.add_argument("--out", required=True)
    lt.add_argument("--count", type=int, default=64)
    lt.add_argument("--min-words", type=int, default=260)
    tb = sub.add_parser("table")
    tb.add_argument("--title", default="encoder")
    tb.add_argument("files", nargs="+")
    args = ap.parse_args()
    {"long-texts": long_texts, "table": table}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
