//! `msp-mesh models train <head>`: the recipe of each trained head (data, protocol,
//! metrics), run on the base encoder's pooled output.
//!
//! - `sentiment-minilm`: UCI sentences, 10-fold stratified cross-validation (accuracy per
//!   source from out-of-fold predictions), then trained on all 3,000.
//! - `spam-email-minilm`: SpamAssassin `spam-1` + `easy-ham-1` only (5-fold CV for the
//!   temperature); with `evaluate`, precision / recall / F1 on `spam-2` + `easy-ham-2` +
//!   `hard-ham-1`.
//! - `threat-category-minilm`: the threat corpus of [`crate::datasets::threat_corpus`],
//!   5-fold CV (accuracy, macro-F1, calibration error), then trained on all of it.
//!
//! Each head's temperature is fitted on its out-of-fold logits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mesh_inference::backend::EmbeddingBackend;
use mesh_models::{Manifest, ModelEntry, Source};
use mesh_numeric::validation;

use crate::datasets::{self, LabelledText};
use crate::head::HeadConfig;
use crate::knowledge::{attack::Attack, cached_embeddings, cwe};
use crate::train::{self, TrainOptions};
use crate::AgentError;

/// Most rows each harmless source (ham, review sentences) and spam add to the threat corpus.
pub const THREAT_BENIGN_LIMIT: usize = 500;

/// Reports progress of long steps (a progress bar on a terminal).
pub trait Progress: Sync {
    /// A new step with `total` units of work.
    fn stage(&self, name: &str, total: usize);
    /// `done` units of the current step are finished.
    fn advance(&self, done: usize);
}

/// Ignores progress.
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&self, _: &str, _: usize) {}
    fn advance(&self, _: usize) {}
}

/// Where a training run reads and writes.
pub struct TrainPaths {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    /// Embedding cache (reused by later runs on the same texts).
    pub cache_dir: PathBuf,
}

/// The ids of every trained head in the manifest.
pub fn trainable_heads(manifest: &Manifest) -> Vec<&ModelEntry> {
    manifest
        .models
        .iter()
        .filter(|m| matches!(m.source, Source::Trained { .. }))
        .collect()
}

/// The encoders whose pooled output equals `base`'s: `base` itself and the model it was
/// derived from (equality proven by the conversion tests).
pub fn equivalent_encoders(manifest: &Manifest, base: &ModelEntry) -> Vec<String> {
    match &base.source {
        Source::Derived { from, .. } => manifest
            .get(from)
            .map(|m| vec![m.versioned_id()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Trains the head `entry` with `encoder` (which must run the head's base model), writes
/// it to `models_dir/<id>` and returns its record.
pub async fn train_head(
    manifest: &Manifest,
    entry: &ModelEntry,
    encoder: &EmbeddingBackend,
    paths: &TrainPaths,
    evaluate: bool,
    progress: &dyn Progress,
) -> Result<HeadConfig, AgentError> {
    let Source::Trained { base, data } = &entry.source else {
        return Err(AgentError::Unavailable(format!(
            "`{}` is not a trained head",
            entry.id
        )));
    };
    let base_entry = manifest
        .get(base)
        .map_err(|e| AgentError::Unavailable(e.to_string()))?;
    if encoder.model_id() != base_entry.versioned_id() {
        return Err(AgentError::Unavailable(format!(
            "`{}` trains on {}, but the encoder is {}",
            entry.id,
            base_entry.versioned_id(),
            encoder.model_id()
        )));
    }
    let dir = |id: &str| paths.data_dir.join(id);
    let embed = |name: &'static str, rows: Vec<LabelledText>| async move {
        let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
        progress.stage(&format!("embedding {name}"), texts.len());
        let x = cached_embeddings(name, &texts, encoder, &paths.cache_dir, &|done, _| {
            progress.advance(done)
        })
        .await?;
        Ok::<_, AgentError>((x, rows))
    };
    let mut metrics = BTreeMap::new();
    let options = TrainOptions::default();
    let labels: Vec<String> = entry.labels.clone();
    let (x, rows, folds) = match entry.task.as_str() {
        "sentiment" => {
            let (x, rows) =
                embed("uci-sentiment", datasets::sentiment(&dir("uci-sentiment"))?).await?;
            (x, rows, 10)
        }
        "spam-email" => {
            let train_rows =
                datasets::emails(&dir("spam-assassin"), &datasets::EMAIL_TRAIN_FOLDERS)?;
            let (x, rows) = embed("spam-train", train_rows).await?;
            (x, rows, 5)
        }
        "threat-category" => {
            // Embedded in three parts so the e-mails and sentences reuse the other heads' cached embeddings.
            let attack = Attack::load(&dir("attack-enterprise"))?;
            let weaknesses = cwe::load(&dir("cwe"))?;
            let (email_x, emails) = embed(
                "spam-train",
                datasets::emails(&dir("spam-assassin"), &datasets::EMAIL_TRAIN_FOLDERS)?,
            )
            .await?;
            let (sentence_x, sentences) =
                embed("uci-sentiment", datasets::sentiment(&dir("uci-sentiment"))?).await?;
            let (knowledge_x, knowledge) = embed(
                "threat-knowledge",
                datasets::threat_knowledge(&attack, &weaknesses),
            )
            .await?;
            let (x, rows) = datasets::threat_corpus(
                (knowledge_x, knowledge),
                (email_x, emails),
                (sentence_x, sentences),
                THREAT_BENIGN_LIMIT,
            );
            (x, rows, 5)
        }
        other => {
            return Err(AgentError::Unavailable(format!(
                "no training recipe for task `{other}`"
            )))
        }
    };
    let y: Vec<usize> = rows.iter().map(|r| r.label).collect();
    progress.stage(&format!("{folds}-fold cross-validation"), folds);
    let oof = train::cross_validate(&x, &y, labels.len(), folds, &options, &|f| {
        progress.advance(f)
    })?;
    let temperature = train::fit_temperature(&oof, &y);
    let pred: Vec<usize> = oof.iter().map(|l| validation::argmax(l)).collect();
    metrics.insert("cv_accuracy".into(), validation::accuracy(&pred, &y));
    metrics.insert(
        "cv_macro_f1".into(),
        validation::macro_f1(&pred, &y, labels.len()),
    );
    let uncalibrated: Vec<Vec<f32>> = oof.iter().map(|l| crate::head::softmax(l, 1.0)).collect();
    let calibrated: Vec<Vec<f32>> = oof
        .iter()
        .map(|l| crate::head::softmax(l, temperature))
        .collect();
    metrics.insert(
        "cv_ece_uncalibrated".into(),
        validation::expected_calibration_error(&uncalibrated, &y),
    );
    metrics.insert(
        "cv_ece_calibrated".into(),
        validation::expected_calibration_error(&calibrated, &y),
    );
    let mut groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    groups.sort();
    groups.dedup();
    if entry.task == "sentiment" {
        for g in groups {
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].group == g).collect();
            let p: Vec<usize> = idx.iter().map(|&i| pred[i]).collect();
            let t: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
            metrics.insert(format!("cv_accuracy_{g}"), validation::accuracy(&p, &t));
        }
    }
    if entry.task == "spam-email" {
        let (p, r, f1) = validation::precision_recall_f1(&pred, &y, 1);
        metrics.insert("cv_precision".into(), p);
        metrics.insert("cv_recall".into(), r);
        metrics.insert("cv_f1".into(), f1);
    }
    progress.stage("training on all rows", 1);
    let layers = train::fit(&x, &y, labels.len(), &options)?;
    progress.advance(1);
    if entry.task == "spam-email" && evaluate {
        let test_rows = datasets::emails(&dir("spam-assassin"), &datasets::EMAIL_TEST_FOLDERS)?;
        let (tx, test_rows) = embed("spam-heldout", test_rows).await?;
        let ty: Vec<usize> = test_rows.iter().map(|r| r.label).collect();
        let tp: Vec<usize> = layers
            .logits(&tx)?
            .iter()
            .map(|l| validation::argmax(l))
            .collect();
        let (p, r, f1) = validation::precision_recall_f1(&tp, &ty, 1);
        metrics.insert("heldout_precision".into(), p);
        metrics.insert("heldout_recall".into(), r);
        metrics.insert("heldout_f1".into(), f1);
        metrics.insert("heldout_accuracy".into(), validation::accuracy(&tp, &ty));
        for folder in datasets::EMAIL_TEST_FOLDERS {
            let idx: Vec<usize> = (0..test_rows.len())
                .filter(|&i| test_rows[i].group == folder)
                .collect();
            let a = validation::accuracy(
                &idx.iter().map(|&i| tp[i]).collect::<Vec<_>>(),
                &idx.iter().map(|&i| ty[i]).collect::<Vec<_>>(),
            );
            metrics.insert(format!("heldout_accuracy_{folder}"), a);
        }
    }
    metrics.insert("training_rows".into(), rows.len() as f64);
    let config = HeadConfig {
        id: entry.id.clone(),
        version: entry.version.clone(),
        base_model: base_entry.versioned_id(),
        equivalent_encoders: equivalent_encoders(manifest, base_entry),
        labels,
        dim: encoder.dim(),
        temperature,
        trained_at: crate::now_iso8601(),
        training_data: data.clone(),
        metrics,
        hyperparameters: options.record(),
    };
    layers.save(&paths.models_dir.join(&entry.id), &config)?;
    Ok(config)
}
