//! DistilBERT sequence classification and T5 greedy generation on the CPU: the Rust side of
//! `scripts/bench_models.sh`, which runs PyTorch (`scripts/bench_models_pytorch.py`) on the
//! same checkpoints and inputs in the same run.
//!
//! `cargo bench -p mesh-benches --bench model_paths -- --task distilbert|t5 --model-dir DIR
//!  [--sentences FILE] [--inputs FILE] [--rounds N] [--max-new-tokens N] [--weights f32|int8]
//!  [--reference PYTORCH_JSON] [--json-out FILE]`
//!
//! - `distilbert`: per batch size (1, 8, 32), each timed call tokenizes the batch, runs the
//!   classifier ([`DistilBertClassifier::logits_ids`], length-bucketed) and takes the softmax.
//!   Sentences/s, tokens/s, p50/p99 per batch, cold load, peak RSS; with `--reference`, the
//!   largest difference of the first 8 sentences' logits to PyTorch's.
//! - `t5`: batch 1, greedy, `--max-new-tokens` (32); tokens/s, ms per token, p50/p99 per
//!   sequence, encoder-only p50 (`generated_tokens_total` counts one round, as PyTorch's
//!   script does); with `--reference`, how many outputs equal PyTorch's token
//!   for token, and the largest difference of the first step's log-probability gaps
//!   (top-5 tokens of PyTorch) to PyTorch's logit gaps.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_benches::{arg_value, peak_rss_mib, quantile_ms, time_batches};
use mesh_inference::classifier::DistilBertClassifier;
use mesh_inference::encoder::WeightFormat;
use mesh_inference::t5::{GenerationOptions, T5Generator};
use mesh_inference::tokenize::TextTokenizer;
use mesh_inference::Device;
use serde_json::{json, Value};

fn main() {
    let task = arg_value("task").expect("--task distilbert|t5");
    let model_dir = PathBuf::from(arg_value("model-dir").expect("--model-dir"));
    let rounds: usize = arg_value("rounds").map_or(3, |r| r.parse().expect("--rounds"));
    let reference: Option<Value> = arg_value("reference").map(|p| {
        serde_json::from_str(&std::fs::read_to_string(&p).expect("read --reference"))
            .expect("--reference is JSON")
    });
    let mut report = match task.as_str() {
        "distilbert" => distilbert(&model_dir, rounds, reference.as_ref()),
        "t5" => t5(&model_dir, rounds, reference.as_ref()),
        other => panic!("unknown --task {other} (distilbert or t5)"),
    };
    let peak = peak_rss_mib();
    println!("peak RSS {:.0} MiB", peak.unwrap_or(f64::NAN));
    report["peak_rss_mb"] = json!(peak);
    report["threads"] = json!(std::env::var("RAYON_NUM_THREADS").ok());
    report["rounds"] = json!(rounds);
    if let Some(path) = arg_value("json-out") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write json");
    }
}

fn distilbert(dir: &Path, rounds: usize, reference: Option<&Value>) -> Value {
    let weights: WeightFormat = arg_value("weights").map_or(WeightFormat::F32, |w| {
        w.parse().expect("--weights f32|int8")
    });
    let sentences_path = arg_value("sentences")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/sentences.txt"))
        });
    let text = std::fs::read_to_string(&sentences_path).expect("read sentences");
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();

    let started = Instant::now();
    let model = DistilBertClassifier::load_dir_as(dir, &Device::Cpu, weights).unwrap();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 256).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let classify = |batch: &[&str]| -> Vec<Vec<f32>> {
        let tokenized = tokenizer.encode_batch(batch).unwrap();
        let rows: Vec<&[u32]> = tokenized.iter().map(|t| t.ids.as_slice()).collect();
        let logits = model.logits_ids(&rows, tokenizer.pad_id()).unwrap();
        logits.iter().map(|l| softmax(l)).collect()
    };
    let total_tokens: usize = tokenizer
        .encode_batch(&sentences)
        .unwrap()
        .iter()
        .map(|t| t.ids.len())
        .sum();
    println!(
        "DistilBERT classifier ({weights} weights), {} sentences ({total_tokens} tokens), {rounds} rounds, cold load {:.0} ms",
        sentences.len(),
        load_s * 1e3
    );
    classify(&sentences[..8]);
    let (results, single) = time_batches(&sentences, total_tokens, rounds, |chunk| {
        std::hint::black_box(classify(chunk));
    });
    // Logits of the first 8 sentences, each alone, as the PyTorch script computes them.
    let logits_first8: Vec<Vec<f32>> = sentences[..8]
        .iter()
        .map(|s| {
            let ids = tokenizer.encode(s).unwrap().ids;
            model
                .logits_ids(&[ids.as_slice()], tokenizer.pad_id())
                .unwrap()
                .remove(0)
        })
        .collect();
    let logits_max_abs_diff = reference.map(|r| {
        let theirs: Vec<Vec<f32>> =
            serde_json::from_value(r["logits_first8"].clone()).expect("reference logits_first8");
        let diff = logits_first8
            .iter()
            .flatten()
            .zip(theirs.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!("largest logit difference to PyTorch (first 8 sentences): {diff:.2e}");
        diff
    });
    json!({
        "model": "distilbert-cls (minilm-l6-distilbert + seeded head)",
        "engine": format!("mesh-inference (candle CPU, {weights} weights)"),
        "weights": weights.to_string(),
        "num_sentences": sentences.len(),
        "total_tokens": total_tokens,
        "cold_load_s": load_s,
        "batch_sizes": results,
        "single_sentence": single,
        "logits_first8": logits_first8,
        "logits_max_abs_diff_vs_reference": logits_max_abs_diff,
    })
}

fn t5(dir: &Path, rounds: usize, reference: Option<&Value>) -> Value {
    let inputs_path = arg_value("inputs").map(PathBuf::from).unwrap_or_else(|| {
        dir.parent()
            .expect("model dir has a parent")
            .join("t5-inputs.json")
    });
    let inputs: Vec<Vec<u32>> = serde_json::from_value(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&inputs_path).expect("inputs"))
            .expect("inputs JSON")["inputs"]
            .clone(),
    )
    .expect("inputs: [[ids]]");
    let max_new_tokens: usize =
        arg_value("max-new-tokens").map_or(32, |n| n.parse().expect("--max-new-tokens"));
    let options = GenerationOptions {
        max_new_tokens,
        ..Default::default()
    };

    let started = Instant::now();
    let model = T5Generator::load_dir(dir, &Device::Cpu).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let input_tokens: usize = inputs.iter().map(Vec::len).sum();
    println!(
        "T5 greedy generation, {} inputs ({input_tokens} tokens), up to {max_new_tokens} new tokens, {rounds} rounds, cold load {:.0} ms",
        inputs.len(),
        load_s * 1e3
    );
    for input in inputs.iter().take(2) {
        model.generate(input, &options).unwrap();
    }
    let mut latencies = Vec::new();
    let mut outputs = Vec::new();
    let mut generated = 0usize;
    let start = Instant::now();
    for round in 0..rounds {
        for input in &inputs {
            let t = Instant::now();
            let out = model.generate(input, &options).unwrap();
            latencies.push(t.elapsed());
            generated += out.len();
            if round == 0 {
                outputs.push(out);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let encoder: Vec<Duration> = inputs
        .iter()
        .map(|input| {
            let t = Instant::now();
            std::hint::black_box(model.encode(input).unwrap());
            t.elapsed()
        })
        .collect();
    let tps = generated as f64 / secs;
    let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
    println!(
        "{generated} tokens: {tps:.1} tokens/s, {:.2} ms per token, p50 {p50:.1} ms, p99 {p99:.1} ms per sequence, encoder p50 {:.1} ms",
        secs * 1e3 / generated as f64,
        quantile_ms(&encoder, 0.5)
    );
    let check = reference.map(|r| {
        let theirs: Vec<Vec<u32>> =
            serde_json::from_value(r["outputs"].clone()).expect("reference outputs");
        let same = outputs.iter().zip(&theirs).filter(|(a, b)| a == b).count();
        // First decoding step: log-probability gaps to PyTorch's top token equal its logit gaps.
        let mut gap_diff = 0f32;
        for (input, top) in inputs.iter().zip(r["first_step_top5"].as_array().unwrap()) {
            let ids: Vec<u32> = serde_json::from_value(top["ids"].clone()).unwrap();
            let logits: Vec<f32> = serde_json::from_value(top["logits"].clone()).unwrap();
            let ours: Vec<f32> = ids
                .iter()
                .map(|&id| model.score(input, &[id]).unwrap()[0])
                .collect();
            for i in 1..ids.len() {
                gap_diff = gap_diff.max(((ours[0] - ours[i]) - (logits[0] - logits[i])).abs());
            }
        }
        println!(
            "outputs equal to PyTorch's: {same} of {}; largest first-step logit-gap difference {gap_diff:.2e}",
            theirs.len()
        );
        json!({"outputs_equal": same, "outputs_compared": theirs.len(), "first_step_gap_max_abs_diff": gap_diff})
    });
    json!({
        "model": "t5-small-shape (untrained, seed 0)",
        "engine": "mesh-inference (candle CPU)",
        "max_new_tokens": max_new_tokens,
        "num_inputs": inputs.len(),
        "input_tokens_total": input_tokens,
        "generated_tokens_total": generated / rounds.max(1),
        "tokens_per_s": tps,
        "ms_per_token": secs * 1e3 / generated as f64,
        "p50_ms": p50,
        "p99_ms": p99,
        "encoder_ms_p50": quantile_ms(&encoder, 0.5),
        "cold_load_s": load_s,
        "reference_check": check,
    })
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}
