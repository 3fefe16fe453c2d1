#!/usr/bin/env python3
"""Prints ours-vs-PyTorch ratios from the two benchmark JSON files.

    python3 scripts/bench_ratio.py target/bench/candle.json target/bench/pytorch.json

Both files share the keys written by benches/benches/encoder.rs and scripts/bench_pytorch.py.
Ratios > 1 mean ours is faster (throughput) or quicker (latency).
"""
import json
import sys


def main():
    ours = json.load(open(sys.argv[1]))
    torch = json.load(open(sys.argv[2]))
    by_batch = {r["batch_size"]: r for r in torch["batch_sizes"]}
    print(f"{'batch':>5} | {'ours sent/s':>11} {'torch sent/s':>12} {'ratio':>6} | "
          f"{'ours p50':>8} {'torch p50':>9} | {'ours p99':>8} {'torch p99':>9}")
    for r in ours["batch_sizes"]:
        t = by_batch.get(r["batch_size"])
        if not t:
            continue
        ratio = r["sentences_per_s"] / t["sentences_per_s"]
        print(f"{r['batch_size']:>5} | {r['sentences_per_s']:>11.1f} {t['sentences_per_s']:>12.1f} {ratio:>6.2f} | "
              f"{r['p50_ms']:>8.2f} {t['p50_ms']:>9.2f} | {r['p99_ms']:>8.2f} {t['p99_ms']:>9.2f}")
    print(f"cold load: ours {ours['cold_load_s']*1e3:.0f} ms, torch {torch['cold_load_s']*1e3:.0f} ms")
    print(f"peak RSS:  ours {ours['peak_rss_mb']:.0f} MB, torch {torch['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
