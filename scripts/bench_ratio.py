#!/usr/bin/env python3
"""Prints ours-vs-PyTorch ratios from the two benchmark JSON files.

    python3 scripts/bench_ratio.py target/bench/candle.json target/bench/pytorch.json

Both files share the keys written by benches/benches/encoder.rs and scripts/bench_pytorch.py
(encoder), or by benches/benches/model_paths.rs and scripts/bench_models_pytorch.py
(DistilBERT classifier: per batch size; T5 generation: tokens/s).
Ratios > 1 mean ours is faster (throughput) or quicker (latency).
"""
import json
import sys


def main():
    ours = json.load(open(sys.argv[1]))
    torch = json.load(open(sys.argv[2]))
    if "tokens_per_s" in ours and "batch_sizes" not in ours:
        generation(ours, torch)
    else:
        batches(ours, torch)
    print(f"cold load: ours {ours['cold_load_s']*1e3:.0f} ms, torch {torch['cold_load_s']*1e3:.0f} ms")
    print(f"peak RSS:  ours {ours['peak_rss_mb']:.0f} MB, torch {torch['peak_rss_mb']:.0f} MB")


def generation(ours, torch):
    print(f"{'':>9} | {'tokens':>6} {'tokens/s':>9} {'ms/token':>8} | {'p50 ms':>8} {'p99 ms':>8} | {'encoder p50':>11}")
    for name, r in (("ours", ours), ("torch", torch)):
        print(f"{name:>9} | {r['generated_tokens_total']:>6} {r['tokens_per_s']:>9.1f} {r['ms_per_token']:>8.2f} | "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} | {r['encoder_ms_p50']:>11.1f}")
    print(f"tokens/s ratio (ours / torch): {ours['tokens_per_s'] / torch['tokens_per_s']:.2f}")
    check = ours.get("reference_check")
    if check:
        print(f"outputs equal to PyTorch's: {check['outputs_equal']} of {check['outputs_compared']}, "
              f"largest first-step logit-gap difference {check['first_step_gap_max_abs_diff']:.1e}")


def batches(ours, torch):
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
    if ours.get("cosine_vs_f32"):
        c = ours["cosine_vs_f32"]
        print(f"cosine to the f32 embeddings: min {c['min']:.5f}, mean {c['mean']:.5f}")
    if ours.get("logits_max_abs_diff_vs_reference") is not None:
        print(f"largest logit difference to PyTorch: {ours['logits_max_abs_diff_vs_reference']:.1e}")


if __name__ == "__main__":
    main()
