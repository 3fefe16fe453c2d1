//! all-MiniLM-L6-v2 against sentence-transformers' vectors (fixture made by
//! `scripts/fixtures/gen_minilm_reference.py`), against candle-transformers'
//! independent BERT, and batched against single inputs.

mod common;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use common::max_abs_diff_real_tokens;
use mesh_inference::backend::{BatchLimits, EmbeddingBackend};
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::encoder::{Encoder, EncoderConfig, WeightFormat};
use mesh_inference::tokenize::pad_batch;
use mesh_models::Manifest;
use mesh_testing::{assert_all_close, cosine, require_local_model};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    sentences: Vec<String>,
    token_counts: Vec<usize>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn embedder() -> SentenceEmbedder {
    embedder_as(WeightFormat::F32)
}

fn embedder_as(format: WeightFormat) -> SentenceEmbedder {
    let dir = require_local_model("all-minilm-l6-v2");
    let manifest = Manifest::builtin();
    SentenceEmbedder::load(
        &dir,
        manifest.get("all-minilm-l6-v2").unwrap(),
        &Device::Cpu,
        format,
    )
    .unwrap()
}

/// The reduced-precision encoders against sentence-transformers' vectors and our f32 ones:
/// f16 weights within cosine 0.9999; int8 within 0.998 (its worst case is the 3-token "Hello",
/// where GGML's per-block activation scaling costs the most).
#[test]
fn reduced_precision_embeddings_stay_close_to_f32() {
    let reference = reference();
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let ours_f32 = embedder().embed(&texts).unwrap();
    for (format, id, floor) in [
        (WeightFormat::F16, "all-minilm-l6-v2@1+f16", 0.9999),
        (WeightFormat::Int8, "all-minilm-l6-v2@1+int8", 0.998),
    ] {
        let model = embedder_as(format);
        assert_eq!(model.model_id(), id);
        for (i, v) in model.embed(&texts).unwrap().iter().enumerate() {
            for (against, other) in [
                ("sentence-transformers", &reference.embeddings[i]),
                ("our f32", &ours_f32[i]),
            ] {
                let c = cosine(v, other);
                assert!(
                    c >= floor,
                    "{format}, sentence {i}: cosine {c} to {against}"
                );
            }
        }
    }
}

#[test]
fn embeddings_match_sentence_transformers() {
    let reference = reference();
    let model = embedder();
    assert_eq!(model.tokenizer().max_len(), reference.max_seq_length);
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();

    // Token counts (and truncation at 256) agree with the reference tokenizer.
    let tokenized = model.tokenizer().encode_batch(&texts).unwrap();
    for (i, t) in tokenized.iter().enumerate() {
        assert_eq!(
            t.ids.len(),
            reference.token_counts[i],
            "token count of sentence {i}"
        );
        assert_eq!(
            t.truncated,
            reference.token_counts[i] == reference.max_seq_length,
            "truncated flag {i}"
        );
    }
    assert!(
        tokenized.iter().any(|t| t.truncated),
        "the fixture exercises truncation"
    );

    // One mixed-length batch: padding must not change any vector.
    let vectors = model.embed(&texts).unwrap();
    for (i, (ours, theirs)) in vectors.iter().zip(&reference.embeddings).enumerate() {
        let c = cosine(ours, theirs);
        assert!(
            c >= 0.99999,
            "sentence {i} ({:?}): cosine {c}",
            reference.sentences[i]
        );
        assert_all_close(ours, theirs, 1e-4, &format!("sentence {i}"));
    }
}

#[test]
fn hidden_states_match_candle_transformers_bert() {
    let dir = require_local_model("all-minilm-l6-v2");
    let config = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let device = Device::Cpu;
    let weights = [dir.join("model.safetensors")];
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &device).unwrap() };
    let ours = Encoder::load(vb.clone(), &config).unwrap();
    let cfg_text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let theirs_cfg: candle_transformers::models::bert::Config =
        serde_json::from_str(&cfg_text).unwrap();
    let theirs = candle_transformers::models::bert::BertModel::load(vb, &theirs_cfg).unwrap();

    let model = embedder();
    let texts = [
        "Patch the Exchange server tonight.",
        "ok",
        "Ransomware encrypted three file shares at the branch office.",
    ];
    let tokenized = model.tokenizer().encode_batch(&texts).unwrap();
    let rows: Vec<&[u32]> = tokenized.iter().map(|t| t.ids.as_slice()).collect();
    let batch = pad_batch(&rows, 0, &device).unwrap();
    let a = ours
        .forward(&batch.input_ids, &batch.attention_mask)
        .unwrap();
    let token_types = batch.input_ids.zeros_like().unwrap();
    let b = theirs
        .forward(&batch.input_ids, &token_types, Some(&batch.attention_mask))
        .unwrap();
    // Compare real tokens only (padding positions are meaningless in both).
    let lengths: Vec<usize> = rows.iter().map(|r| r.len()).collect();
    let diff = max_abs_diff_real_tokens(&a, &b, &lengths);
    assert!(diff < 1e-4, "max abs diff of hidden states {diff}");
}

#[test]
fn batched_results_equal_single_results() {
    let reference = reference();
    let texts: Vec<String> = reference.sentences.iter().take(16).cloned().collect();
    let model = embedder();
    let singles: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| model.embed(&[t.as_str()]).unwrap().remove(0))
        .collect();

    let limits = BatchLimits {
        max_batch_tokens: 4096,
        max_batch_requests: 8,
        ..BatchLimits::default()
    };
    let (backend, _thread) = EmbeddingBackend::spawn(model, limits);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let batched: Vec<Vec<f32>> = runtime.block_on(async {
        // Many callers at once, so the worker merges them into dynamic batches.
        let calls = texts.iter().map(|t| {
            let backend = backend.clone();
            let t = t.clone();
            tokio::spawn(async move { backend.embed(&[t], true).await.unwrap().remove(0).vector })
        });
        let mut out = Vec::new();
        for c in calls.collect::<Vec<_>>() {
            out.push(c.await.unwrap());
        }
        out
    });
    for (i, (s, b)) in singles.iter().zip(&batched).enumerate() {
        assert_all_close(b, s, 1e-5, &format!("text {i} batched against single"));
    }
    // A request larger than the token budget still runs (alone).
    let long = reference
        .sentences
        .iter()
        .find(|s| s.len() > 1000)
        .unwrap()
        .clone();
    let tiny = BatchLimits {
        max_batch_tokens: 10,
        max_batch_requests: 2,
        ..BatchLimits::default()
    };
    let (backend, _t) = EmbeddingBackend::spawn(embedder(), tiny);
    let out = runtime
        .block_on(backend.embed(&[long, "x".into()], true))
        .unwrap();
    assert!(out[0].truncated && out[0].tokens == 256 && !out[1].truncated);
    let c = cosine(
        &out[0].vector,
        &reference.embeddings[reference
            .sentences
            .iter()
            .position(|s| s.len() > 1000)
            .unwrap()],
    );
    assert!(c >= 0.99999);
}

/// The queue is bounded and answers at once when full; texts whose caller has gone are
/// skipped, not embedded.
#[test]
fn the_queue_is_bounded_and_skips_texts_nobody_waits_for() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let limits = BatchLimits {
        max_batch_requests: 1,
        max_queued_texts: 8,
        ..BatchLimits::default()
    };
    let (backend, _thread) = EmbeddingBackend::spawn(embedder(), limits);
    let long = "The backup job on the file server failed again overnight. ".repeat(20);
    // 64 texts in one call, queue of 8: refused at once, nothing left waiting.
    let many: Vec<String> = (0..64).map(|i| format!("{long} {i}")).collect();
    let refused = runtime.block_on(backend.embed(&many, true));
    assert!(
        matches!(
            refused,
            Err(mesh_inference::InferenceError::QueueFull { capacity: 8 })
        ),
        "{refused:?}"
    );
    // Callers that give up: their texts are skipped by the worker.
    runtime.block_on(async {
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let (backend, text) = (backend.clone(), format!("{long} gone {i}"));
                tokio::spawn(async move { backend.embed(&[text], true).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        for call in calls {
            call.abort();
        }
        // The worker drains the queue (skipping the abandoned texts); a caller retrying
        // meanwhile is served once there is room.
        let mut after = None;
        for _ in 0..500 {
            match backend.embed(&["still served".to_string()], true).await {
                Ok(v) => {
                    after = Some(v);
                    break;
                }
                Err(mesh_inference::InferenceError::QueueFull { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(after.expect("served after the drain")[0].vector.len(), 384);
    });
    let stats = backend.stats();
    assert!(
        stats.abandoned >= 4,
        "texts of gone callers were skipped: {stats:?}"
    );
    assert!(stats.texts < 8 + 8 + 1, "{stats:?}");
}
