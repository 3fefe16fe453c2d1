//! Encoder throughput and latency of all-MiniLM-L6-v2 on the CPU.
//!
//! `cargo bench -p mesh-benches --bench encoder -- [--json-out FILE] [--rounds N]`
//! reads `benches/data/sentences.txt` (mixed lengths, 8 to 256 tokens) and prints,
//! per batch size (1, 8, 32): sentences/s, tokens/s (real tokens, padding not
//! counted), p50/p99 latency per batch; plus cold load time and peak RSS.
//! `scripts/bench_compare.sh` runs PyTorch on the same sentences and prints the ratio.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesh_benches::{peak_rss_mib, quantile_ms};
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::Device;
use mesh_models::{require_local_model, Manifest};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let json_out = flag("--json-out").map(PathBuf::from);
    let rounds: usize = flag("--rounds").and_then(|r| r.parse().ok()).unwrap_or(3);
    let sentences_path = flag("--sentences").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/sentences.txt"))
    });
    let text = std::fs::read_to_string(&sentences_path).expect("read sentences");
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();

    let dir = require_local_model("all-minilm-l6-v2");
    let manifest = Manifest::builtin();
    let load_start = Instant::now();
    let model = SentenceEmbedder::load(
        &dir,
        manifest.get("all-minilm-l6-v2").unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let tokenized = model.tokenizer().encode_batch(&sentences).unwrap();
    let total_tokens: usize = tokenized.iter().map(|t| t.ids.len()).sum();
    println!(
        "all-MiniLM-L6-v2, {} sentences ({} tokens, {:.1} per sentence), {} rounds, cold load {load_ms:.0} ms",
        sentences.len(),
        total_tokens,
        total_tokens as f64 / sentences.len() as f64,
        rounds
    );
    // Warm-up.
    model.embed(&sentences[..8]).unwrap();

    let mut results = Vec::new();
    let mut single = None;
    println!(
        "{:>5} {:>12} {:>12} {:>10} {:>10}",
        "batch", "sentences/s", "tokens/s", "p50 ms", "p99 ms"
    );
    for batch in [1usize, 8, 32] {
        let mut latencies: Vec<Duration> = Vec::new();
        let start = Instant::now();
        for _ in 0..rounds {
            for chunk in sentences.chunks(batch) {
                let t = Instant::now();
                std::hint::black_box(model.embed(chunk).unwrap());
                latencies.push(t.elapsed());
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let sps = (sentences.len() * rounds) as f64 / secs;
        let tps = (total_tokens * rounds) as f64 / secs;
        let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
        println!("{batch:>5} {sps:>12.1} {tps:>12.0} {p50:>10.2} {p99:>10.2}");
        results.push(serde_json::json!({
            "batch_size": batch, "batches_timed": latencies.len(), "sentences_per_s": sps,
            "tokens_per_s": tps, "p50_ms": p50, "p99_ms": p99,
        }));
        if batch == 1 {
            single = Some(serde_json::json!({"p50_ms": p50, "p99_ms": p99}));
        }
    }
    let peak = peak_rss_mib();
    println!("peak RSS {:.0} MiB", peak.unwrap_or(f64::NAN));
    if let Some(path) = json_out {
        // Same keys as scripts/bench_pytorch.py, so scripts/bench_ratio.py can compare.
        let report = serde_json::json!({
            "model": "all-MiniLM-L6-v2",
            "engine": "mesh-inference (candle CPU)",
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "rounds": rounds,
            "num_sentences": sentences.len(),
            "total_tokens": total_tokens,
            "cold_load_s": load_ms / 1e3,
            "peak_rss_mb": peak,
            "batch_sizes": results,
            "single_sentence": single,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write json");
    }
}
