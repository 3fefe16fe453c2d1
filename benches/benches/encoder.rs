//! Encoder throughput and latency of all-MiniLM-L6-v2 on the CPU.
//!
//! `cargo bench -p mesh-benches --bench encoder -- [--json-out FILE] [--rounds N]`
//! reads `benches/data/sentences.txt` (mixed lengths, 8 to 256 tokens) and prints,
//! per batch size (1, 8, 32): sentences/s, tokens/s (real tokens, padding not
//! counted), p50/p99 latency per batch; plus cold load time and peak RSS.
//! `scripts/bench_compare.sh` runs PyTorch on the same sentences and prints the ratio.
//! `--weights f16` or `--weights int8` runs the reduced-precision encoder instead and adds the cosine of each sentence's
//! embedding to the f32 one (measured after the timings and the peak-RSS reading).
//! After the timings it measures the CPU's f32 FMA peak on the rayon pool's threads
//! (`mesh_benches::fma_peak_gflops`) and prints each batch size's useful GFLOP/s (the linear
//! layers' and attention products' multiply-adds on real tokens, padding not counted) as a
//! fraction of it.

use std::path::PathBuf;
use std::time::Instant;

use mesh_benches::arg_value;
use mesh_benches::{fma_peak_gflops, peak_rss_mib, time_batches};
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::encoder::{EncoderConfig, WeightFormat};
use mesh_inference::Device;
use mesh_models::Manifest;
use mesh_testing::{cosine, require_local_model};

fn main() {
    // As the server runs it.
    mesh_inference::tune_cpu_threads();
    let json_out = arg_value("json-out").map(PathBuf::from);
    let weights: WeightFormat = arg_value("weights")
        .map(|w| w.parse().expect("--weights"))
        .unwrap_or_default();
    let rounds: usize = arg_value("rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let sentences_path = arg_value("sentences")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/sentences.txt"))
        });
    let text = std::fs::read_to_string(&sentences_path).expect("read sentences");
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();

    let dir = require_local_model("all-minilm-l6-v2");
    let manifest = Manifest::builtin();
    let entry = manifest.get("all-minilm-l6-v2").unwrap();
    let load_start = Instant::now();
    let model = SentenceEmbedder::load(&dir, entry, &Device::Cpu, weights).unwrap();
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let tokenized = model.tokenizer().encode_batch(&sentences).unwrap();
    let total_tokens: usize = tokenized.iter().map(|t| t.ids.len()).sum();
    println!(
        "all-MiniLM-L6-v2 ({weights} weights), {} sentences ({} tokens, {:.1} per sentence), {} rounds, cold load {load_ms:.0} ms",
        sentences.len(),
        total_tokens,
        total_tokens as f64 / sentences.len() as f64,
        rounds
    );
    // Warm-up.
    model.embed(&sentences[..8]).unwrap();

    let (results, single) = time_batches(&sentences, total_tokens, rounds, |chunk| {
        std::hint::black_box(model.embed(chunk).unwrap());
    });
    let peak = peak_rss_mib();
    println!("peak RSS {:.0} MiB", peak.unwrap_or(f64::NAN));
    let flops = useful_flops(&dir.join("config.json"), &tokenized);
    // The threads the encoder ran on: the rayon pool's (RAYON_NUM_THREADS, else every core).
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t: &usize| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let fma_peak = fma_peak_gflops(threads);
    let gflops: Vec<f64> = results
        .iter()
        .map(|r| {
            flops * r["sentences_per_s"].as_f64().unwrap_or(0.0) / sentences.len() as f64 / 1e9
        })
        .collect();
    if let Some(fma_peak) = fma_peak {
        print!(
            "FMA peak {fma_peak:.0} GFLOP/s on {threads} threads; useful GFLOP/s at batch 1 / 8 / 32:"
        );
        for g in &gflops {
            print!(" {g:.0} ({:.0} %)", 100.0 * g / fma_peak);
        }
        println!();
    }
    let cosine = (weights != WeightFormat::F32).then(|| {
        let reference = SentenceEmbedder::load(&dir, entry, &Device::Cpu, WeightFormat::F32)
            .unwrap()
            .embed(&sentences)
            .unwrap();
        let cosines: Vec<f64> = model
            .embed(&sentences)
            .unwrap()
            .iter()
            .zip(&reference)
            .map(|(a, b)| cosine(a, b))
            .collect();
        let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        println!("cosine to the f32 embeddings: min {min:.5}, mean {mean:.5}");
        serde_json::json!({"min": min, "mean": mean})
    });
    if let Some(path) = json_out {
        // Same keys as scripts/bench_pytorch.py, so scripts/bench_ratio.py can compare.
        let report = serde_json::json!({
            "model": "all-MiniLM-L6-v2",
            "engine": format!("ours-{weights}"),
            "engine_detail": format!("mesh-inference (candle CPU, {weights} weights)"),
            "weights": weights.to_string(),
            "cosine_vs_f32": cosine,
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "rounds": rounds,
            "num_sentences": sentences.len(),
            "total_tokens": total_tokens,
            "cold_load_s": load_ms / 1e3,
            "peak_rss_mb": peak,
            "batch_sizes": results,
            "single_sentence": single,
            "useful_gflops": gflops,
            "fma_peak_gflops": fma_peak,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write json");
    }
}

/// Multiply-add FLOPs of one pass over `texts` on real tokens: per layer and text of `L`
/// tokens, `2 L (4 h² + 2 h f)` in the linear layers and `4 L² h` in the attention products.
fn useful_flops(
    config: &std::path::Path,
    texts: &[mesh_inference::tokenize::TokenizedText],
) -> f64 {
    let EncoderConfig::Bert(c) = EncoderConfig::from_file(config).expect("config.json") else {
        panic!("the encoder bench runs a BERT checkpoint")
    };
    let (h, f) = (c.hidden_size as f64, c.intermediate_size as f64);
    let per_layer: f64 = texts
        .iter()
        .map(|t| {
            let l = t.ids.len() as f64;
            2.0 * l * (4.0 * h * h + 2.0 * h * f) + 4.0 * l * l * h
        })
        .sum();
    per_layer * c.num_hidden_layers as f64
}
