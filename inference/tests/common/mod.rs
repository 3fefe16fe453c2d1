//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a subset

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use mesh_models::{sha256_file, Architecture, FileSpec, ModelEntry, Source};

/// The tiny DistilBERT classifier fixture (made by `scripts/fixtures/gen_tiny_models.py`).
pub fn tiny_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/distilbert_tiny")
}

/// A manifest entry for the tiny classifier; `model_sha` pins its weights
/// (`None`: the file's real sha256).
pub fn tiny_entry(hub_repo: Option<&str>, model_sha: Option<String>) -> ModelEntry {
    let dir = tiny_model_dir();
    let pin = |name: &str| sha256_file(&dir.join(name)).unwrap();
    ModelEntry {
        id: "tiny-distilbert".into(),
        version: "1".into(),
        architecture: Architecture::Distilbert,
        task: "classification".into(),
        description: "test fixture".into(),
        license: "test".into(),
        pooling: None,
        normalize: false,
        max_seq_length: None,
        labels: vec![],
        source: Source::Derived {
            from: "x".into(),
            recipe: "x".into(),
        },
        hub_repo: hub_repo.map(str::to_string),
        hub_revision: None,
        metrics: Default::default(),
        trained_at: None,
        files: vec![
            FileSpec {
                name: "config.json".into(),
                sha256: Some(pin("config.json")),
            },
            FileSpec {
                name: "model.safetensors".into(),
                sha256: Some(model_sha.unwrap_or_else(|| pin("model.safetensors"))),
            },
        ],
    }
}

/// Largest absolute difference between two `(batch, seq, hidden)` outputs over
/// the real tokens of each row (`lengths[i]` of row `i`); padding is ignored.
pub fn max_abs_diff_real_tokens(a: &Tensor, b: &Tensor, lengths: &[usize]) -> f32 {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let x = a.get(i).unwrap().narrow(0, 0, n).unwrap();
            let y = b.get(i).unwrap().narrow(0, 0, n).unwrap();
            (x - y)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
        .fold(0f32, f32::max)
}
