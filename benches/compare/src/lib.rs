//! `msp-mesh bench compare`: every available model of a task run on the same labelled records,
//! reported side by side (JSON, Markdown, and an HTML page with inline SVG plots).
//!
//! Text classification tasks (`sentiment`, `spam`, `threat`) compare:
//! - the task's trained head on the MiniLM encoder (the model the agents serve);
//! - a hashed bag-of-words logistic regression (unigrams and bigrams, 512 buckets), cross-fitted
//!   on the given records (5 stratified folds: every record is predicted by a model that did not
//!   see it);
//! - the majority class, cross-fitted the same way.
//!
//! With `--comprehend` (sentiment) or `--bedrock` (every text task) the cloud providers join:
//! Amazon Comprehend's DetectSentiment, and a Claude model on Bedrock asked zero-shot for one
//! of the labels; their cost column is the providers' list price of the requests made.
//!
//! The churn task (a CSV of client records with a `label`, `churn` or `churned` column) compares
//! the served churn model (`mlc-churn`) with the same regression cross-fitted on the file and the
//! majority class.
//!
//! The anomaly task (labelled points) compares the anomaly agent's isolation forest (its own
//! flagging threshold) with robust z-scores (flagged above 3.5). Both fit on the whole file, so
//! their per-record time is the batch's time divided by the records.
//!
//! The forecast task (series with a held-out end) compares the revenue agent's forecaster with
//! seasonal naive and drift; see [`forecast`].
//!
//! Quality figures (accuracy, macro F1, ROC-AUC, each with a 95% percentile bootstrap interval of
//! 1,000 seeded resamples) depend only on the data and the seed: the same data gives the same
//! figures. Latency (per record, one at a time), throughput (batched) and the cost per 1,000
//! records derived from it are measurements of this machine and vary between runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mesh_agents::head::ClassificationHead;
use mesh_cloud::{Bedrock, Comprehend, COMPREHEND_MODEL};
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::encoder::WeightFormat;
use mesh_models::Manifest;
use mesh_numeric::logistic::Logistic;
use mesh_numeric::rng::SplitMix64;
use mesh_numeric::stats::sigmoid;
use mesh_numeric::validation::{accuracy, argmax, macro_f1, stratified_folds};
use serde::Serialize;
use serde_json::Value;

pub mod forecast;

/// Tasks `bench compare` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Sentiment,
    Spam,
    Threat,
    Anomaly,
    Forecast,
    Churn,
}

impl Task {
    /// The trained head of a text task.
    fn head(self) -> Option<&'static str> {
        match self {
            Task::Sentiment => Some("sentiment-minilm"),
            Task::Spam => Some("spam-email-minilm"),
            Task::Threat => Some("threat-category-minilm"),
            _ => None,
        }
    }
}

/// Lambda's x86_64 price per GB-second (us-east-1 list price), for the cost column.
pub const LAMBDA_USD_PER_GB_S: f64 = 0.000_016_666_7;
/// Memory of the function the cost assumes: 1,769 MB is one full vCPU.
pub const LAMBDA_MEMORY_GB: f64 = 1.769;
/// Buckets of the bag-of-words baseline.
const HASH_BUCKETS: usize = 512;
/// Folds of the cross-fitted baselines.
const FOLDS: usize = 5;
/// Records timed one at a time for the latency figures.
const LATENCY_SAMPLE: usize = 64;

/// Cloud providers that join the text tasks when configured.
#[derive(Clone, Default)]
pub struct CloudCandidates {
    pub comprehend: Option<Arc<Comprehend>>,
    pub bedrock: Option<Arc<Bedrock>>,
}

impl std::fmt::Debug for CloudCandidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudCandidates")
            .field("comprehend", &self.comprehend.is_some())
            .field("bedrock", &self.bedrock.as_ref().map(|b| b.model_id()))
            .finish()
    }
}

/// Claude 3 Haiku's list price on Bedrock, USD per million input and output tokens (the
/// cost column of other Bedrock models is left empty).
const HAIKU_USD_PER_M_TOKENS: (f64, f64) = (0.25, 1.25);
/// Cloud requests in flight at once.
const CLOUD_CONCURRENCY: usize = 8;

/// What to compare and where the report goes.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub task: Task,
    /// JSON lines (`{"text", "label"}`) or CSV with `text` and `label` columns.
    pub data: PathBuf,
    pub out_dir: PathBuf,
    pub models_dir: PathBuf,
    pub seed: u64,
    pub bootstrap: usize,
    pub cloud: CloudCandidates,
    /// Also score the head on the encoder with these weight formats, next to the f32 one.
    pub encoder_variants: Vec<WeightFormat>,
}

/// A figure with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// One model's results.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub name: String,
    pub model_used: String,
    pub kind: &'static str,
    /// What the model was trained on (figures on those records are training-set figures).
    pub trained_on: Vec<String>,
    pub accuracy: Estimate,
    pub macro_f1: Estimate,
    /// Binary: ROC-AUC of the positive class; multiclass: the mean of one-vs-rest AUCs.
    pub roc_auc: Estimate,
    /// ROC curve points (false positive rate, true positive rate) of the positive class;
    /// multiclass: micro-averaged one-vs-rest (every record and class one decision).
    pub roc_curve: Vec<(f64, f64)>,
    /// The predicted label of every record, in input order.
    pub predictions: Vec<usize>,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub throughput_per_s: f64,
    pub cost_per_1000_usd: f64,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub task: Task,
    pub data: String,
    pub data_sha256: String,
    pub records: usize,
    pub labels: Vec<String>,
    pub label_counts: Vec<usize>,
    pub seed: u64,
    pub bootstrap_resamples: usize,
    pub models: Vec<ModelReport>,
    /// The forecast task's figures, series and forecasts (its `models` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<forecast::ForecastComparison>,
}

/// The JSON values of a JSON-lines text with their 1-based line numbers (blank lines skipped).
fn json_lines(content: &str) -> anyhow::Result<Vec<(usize, Value)>> {
    content
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let value = serde_json::from_str(l).with_context(|| format!("line {}", i + 1))?;
            Ok((i + 1, value))
        })
        .collect()
}

/// [`json_lines`] of a file.
fn read_json_lines(path: &Path) -> anyhow::Result<Vec<(usize, Value)>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    json_lines(&content)
}

/// Whether `path` is read as CSV (by its extension); anything else is JSON lines.
fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// A CSV file's header row and records.
struct CsvTable {
    headers: csv::StringRecord,
    records: Vec<csv::StringRecord>,
}

impl CsvTable {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let mut reader =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let headers = reader.headers()?.clone();
        let records = reader.records().collect::<Result<_, _>>()?;
        Ok(Self { headers, records })
    }

    /// The index of column `name`; an error names the file.
    fn column(&self, name: &str, path: &Path) -> anyhow::Result<usize> {
        self.headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no `{name}` column", path.display()))
    }
}

/// Reads labelled texts; labels are names of `labels` (any case) or their indices.
pub fn read_labelled(path: &Path, labels: &[String]) -> anyhow::Result<Vec<(String, usize)>> {
    let label_of = |v: &Value, row: usize| -> anyhow::Result<usize> {
        let text = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => usize::from(*b).to_string(),
            _ => anyhow::bail!("record {row}: `label` is missing"),
        };
        if let Some(i) = labels.iter().position(|l| l.eq_ignore_ascii_case(&text)) {
            return Ok(i);
        }
        match text.parse::<usize>() {
            Ok(i) if i < labels.len() => Ok(i),
            _ => anyhow::bail!(
                "record {row}: label `{text}` is none of {}",
                labels.join(", ")
            ),
        }
    };
    let mut out = vec![];
    if is_csv(path) {
        let table = CsvTable::read(path)?;
        let (text, label) = (table.column("text", path)?, table.column("label", path)?);
        for (row, record) in table.records.iter().enumerate() {
            out.push((
                record[text].to_string(),
                label_of(&Value::String(record[label].to_string()), row + 1)?,
            ));
        }
    } else {
        for (line, v) in read_json_lines(path)? {
            let text = v["text"]
                .as_str()
                .with_context(|| format!("line {line}: `text` is missing"))?;
            out.push((text.to_string(), label_of(&v["label"], line)?));
        }
    }
    anyhow::ensure!(!out.is_empty(), "{} holds no records", path.display());
    Ok(out)
}

/// Runs the comparison and writes `report.json`, `report.md` and `report.html` to `out_dir`.
pub fn run(options: &CompareOptions, progress: &indicatif::ProgressBar) -> anyhow::Result<Report> {
    let mut forecast = None;
    let (labels, y, models) = match options.task {
        Task::Sentiment | Task::Spam | Task::Threat => compare_text(options, progress)?,
        Task::Anomaly => compare_anomaly(options, progress)?,
        Task::Churn => compare_churn(options, progress)?,
        Task::Forecast => {
            forecast = Some(forecast::compare(options, progress)?);
            (vec![], vec![], vec![])
        }
    };
    let mut label_counts = vec![0; labels.len()];
    for &l in &y {
        label_counts[l] += 1;
    }
    let report = Report {
        task: options.task,
        data: options.data.display().to_string(),
        data_sha256: {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(std::fs::read(&options.data)?))
        },
        records: forecast.as_ref().map_or(y.len(), |f| f.series.len()),
        labels,
        label_counts,
        seed: options.seed,
        bootstrap_resamples: options.bootstrap,
        models,
        forecast,
    };
    std::fs::create_dir_all(&options.out_dir)?;
    std::fs::write(
        options.out_dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(options.out_dir.join("report.md"), markdown(&report))?;
    std::fs::write(options.out_dir.join("report.html"), html(&report))?;
    Ok(report)
}

/// The labels, the truth and the models' results of a comparison.
type Compared = (Vec<String>, Vec<usize>, Vec<ModelReport>);

/// The text tasks: the head, the bag of words, the majority class.
fn compare_text(
    options: &CompareOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Compared> {
    let head_id = options.task.head().context("a text task")?;
    let head = ClassificationHead::load_dir(&options.models_dir.join(head_id))
        .with_context(|| format!("loading the {head_id} head (run `msp-mesh prepare`)"))?;
    let labels = head.labels().to_vec();
    let records = read_labelled(&options.data, &labels)?;
    let texts: Vec<&str> = records.iter().map(|(t, _)| t.as_str()).collect();
    let y: Vec<usize> = records.iter().map(|(_, l)| *l).collect();
    let manifest = Manifest::builtin();
    let base = &head.config().base_model;
    let encoder_id = base.split_once('@').map_or(base.as_str(), |(id, _)| id);
    let entry = manifest.get(encoder_id)?.clone();
    let mut models = vec![];
    let mut formats = vec![WeightFormat::F32];
    formats.extend(
        options
            .encoder_variants
            .iter()
            .filter(|f| **f != WeightFormat::F32),
    );
    for format in formats {
        let encoder = SentenceEmbedder::load(
            &options.models_dir.join(encoder_id),
            &entry,
            &mesh_inference::Device::Cpu,
            format,
        )?;
        progress.set_message(format!(
            "{head_id} on {} records ({format} encoder)",
            records.len()
        ));
        let (probabilities, timing) = time_model(&texts, |batch| {
            let features = encoder.embed(batch)?;
            Ok(head.probabilities(&features, batch)?)
        })?;
        let (name, model_used) = match format {
            WeightFormat::F32 => (
                format!("{head_id} (MiniLM encoder + trained head)"),
                head.config().versioned_id(),
            ),
            other => (
                format!("{head_id} ({other} MiniLM encoder + the same head)"),
                format!("{} on {}", head.config().versioned_id(), encoder.model_id()),
            ),
        };
        let mut head_report = assess(
            name,
            model_used,
            "local head",
            &probabilities,
            None,
            &y,
            labels.len(),
            timing,
            options,
        );
        head_report.trained_on = head.config().training_data.clone();
        models.push(head_report);
        if options.task == Task::Threat && format == WeightFormat::F32 {
            progress.set_message("zero-shot similarity to the category descriptions");
            models.push(zero_shot_threat(&encoder, &texts, &y, &labels, options)?);
        }
    }

    progress.set_message("bag-of-words logistic regression (cross-fitted)");
    let folds = stratified_folds(&y, FOLDS, options.seed);
    let features: Vec<Vec<f64>> = texts.iter().map(|t| hashed_bag_of_words(t)).collect();
    let started = Instant::now();
    let probabilities = cross_fit_logistic(&features, &y, labels.len(), &folds)?;
    let fit_time = started.elapsed();
    // Timing: the models fitted on every record, scoring as a deployed model would.
    let classes: Vec<usize> = if labels.len() == 2 {
        vec![1]
    } else {
        (0..labels.len()).collect()
    };
    let fitted: Vec<Logistic> = classes
        .iter()
        .map(|&class| {
            let truth: Vec<bool> = y.iter().map(|&l| l == class).collect();
            Logistic::fit(&features, &truth, 1.0).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let (_, timing) = time_model(&texts, |batch| {
        Ok(batch
            .iter()
            .map(|t| {
                let x = hashed_bag_of_words(t);
                fitted.iter().map(|m| m.probability(&x) as f32).collect()
            })
            .collect())
    })?;
    models.push(assess(
        format!("bag-of-words logistic regression ({HASH_BUCKETS} hashed uni/bigrams, {FOLDS}-fold cross-fitted, fit {:.1}s)", fit_time.as_secs_f64()),
        format!("hashed-bow-logistic@{HASH_BUCKETS}"),
        "baseline",
        &probabilities,
        None,
        &y,
        labels.len(),
        timing,
        options,
    ));

    let priors = cross_fit_priors(&y, labels.len(), &folds);
    models.push(assess(
        "majority class (cross-fitted class frequencies)".into(),
        "majority-class".into(),
        "baseline",
        &priors,
        None,
        &y,
        labels.len(),
        Timing::default(),
        options,
    ));

    models.extend(compare_cloud(options, &texts, &y, &labels, progress)?);
    Ok((labels, y, models))
}

/// Scale of the zero-shot similarities before the softmax (cosines lie within a few tenths of
/// each other; the accuracy does not depend on it).
const ZERO_SHOT_SCALE: f32 = 20.0;

/// The zero-shot baseline of the threat task: the category whose one-line description
/// ([`mesh_agents::datasets::THREAT_DESCRIPTIONS`]) is closest to the text (MiniLM cosine).
fn zero_shot_threat(
    encoder: &SentenceEmbedder,
    texts: &[&str],
    y: &[usize],
    labels: &[String],
    options: &CompareOptions,
) -> anyhow::Result<ModelReport> {
    let categories = mesh_agents::datasets::THREAT_CATEGORIES;
    anyhow::ensure!(
        labels.iter().map(String::as_str).eq(categories),
        "the threat head's labels are not the categories the descriptions describe"
    );
    let descriptions: Vec<&str> = mesh_agents::datasets::THREAT_DESCRIPTIONS.to_vec();
    let prototypes = encoder.embed(&descriptions)?;
    let (probabilities, timing) = time_model(texts, |batch| {
        Ok(encoder
            .embed(batch)?
            .iter()
            .map(|v| {
                let scores: Vec<f32> = prototypes
                    .iter()
                    .map(|p| ZERO_SHOT_SCALE * v.iter().zip(p).map(|(a, b)| a * b).sum::<f32>())
                    .collect();
                mesh_agents::head::softmax(&scores, 1.0)
            })
            .collect())
    })?;
    Ok(assess(
        "zero-shot: MiniLM similarity to a one-line description per category".into(),
        format!("{} zero-shot", encoder.model_id()),
        "baseline",
        &probabilities,
        None,
        y,
        labels.len(),
        timing,
        options,
    ))
}

/// A cloud provider's answers: class probabilities, the predicted labels, per-request
/// latency and list price.
struct CloudAnswers {
    probabilities: Vec<Vec<f32>>,
    predictions: Vec<usize>,
    latencies: Vec<Duration>,
    cost_usd: f64,
    wall: Duration,
}

impl CloudAnswers {
    fn report(
        self,
        name: String,
        model_used: String,
        y: &[usize],
        n_labels: usize,
        options: &CompareOptions,
    ) -> ModelReport {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
        let timing = Timing {
            p50: at(0.5),
            p95: at(0.95),
            per_record_batched: self.wall / y.len() as u32,
        };
        let mut report = assess(
            name,
            model_used,
            "cloud",
            &self.probabilities,
            Some(self.predictions),
            y,
            n_labels,
            timing,
            options,
        );
        report.cost_per_1000_usd = self.cost_usd / y.len() as f64 * 1000.0;
        report
    }
}

/// Runs `ask` on every text, [`CLOUD_CONCURRENCY`] at a time, in input order.
fn ask_all<T, F, Fut>(texts: &[&str], ask: F) -> anyhow::Result<(Vec<(T, Duration)>, Duration)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let answers = runtime.block_on(
        futures_util::stream::iter(texts.iter().map(|t| {
            let call = ask(t.to_string());
            async move {
                let s = Instant::now();
                call.await.map(|v| (v, s.elapsed()))
            }
        }))
        .buffered(CLOUD_CONCURRENCY)
        .collect::<Vec<_>>(),
    );
    let answers = answers.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok((answers, started.elapsed()))
}

/// The configured cloud providers on a text task.
fn compare_cloud(
    options: &CompareOptions,
    texts: &[&str],
    y: &[usize],
    labels: &[String],
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<ModelReport>> {
    let mut models = vec![];
    let label_index = |name: &str| labels.iter().position(|l| l.eq_ignore_ascii_case(name));
    if let Some(comprehend) = &options.cloud.comprehend {
        let (negative, positive) = match (label_index("NEGATIVE"), label_index("POSITIVE")) {
            (Some(n), Some(p)) if options.task == Task::Sentiment => (n, p),
            _ => anyhow::bail!(
                "--comprehend answers sentiment only; drop it for {:?}",
                options.task
            ),
        };
        progress.set_message(format!(
            "Comprehend DetectSentiment on {} records",
            texts.len()
        ));
        let (answers, wall) = ask_all(texts, |text| {
            let comprehend = Arc::clone(comprehend);
            async move { Ok(comprehend.sentiment(&text).await?.value) }
        })?;
        // NEUTRAL and MIXED answers are resolved by the larger of the two scores.
        let mut probabilities = vec![];
        for ((_, [pos, neg, _, _]), _) in &answers {
            let p = pos / (pos + neg).max(f32::EPSILON);
            let mut row = vec![0f32; labels.len()];
            row[positive] = p;
            row[negative] = 1.0 - p;
            probabilities.push(row);
        }
        let predictions = probabilities.iter().map(|p| argmax(p)).collect();
        models.push(
            CloudAnswers {
                probabilities,
                predictions,
                latencies: answers.iter().map(|(_, d)| *d).collect(),
                cost_usd: texts.iter().map(|t| mesh_cloud::comprehend::request_cost_usd(t)).sum(),
                wall,
            }
            .report(
                "Amazon Comprehend DetectSentiment (NEUTRAL / MIXED resolved by the larger of the positive and negative scores)".into(),
                COMPREHEND_MODEL.into(),
                y,
                labels.len(),
                options,
            ),
        );
    }
    if let Some(bedrock) = &options.cloud.bedrock {
        progress.set_message(format!("{} on {} records", bedrock.model_id(), texts.len()));
        let system = format!(
            "You label texts for an evaluation. Answer with exactly one of these labels and nothing else: {}.",
            labels.join(", ")
        );
        let (answers, wall) = ask_all(texts, |text| {
            let (bedrock, system) = (Arc::clone(bedrock), system.clone());
            async move { Ok(bedrock.generate(&system, &text, 10).await?.value) }
        })?;
        let mut unparsed = 0;
        let (mut probabilities, mut predictions, mut cost) = (vec![], vec![], 0.0);
        for (i, (generated, _)) in answers.iter().enumerate() {
            let answer = generated.text.trim().trim_end_matches('.');
            let named = label_index(answer).or_else(|| {
                let words: Vec<String> = answer
                    .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
                    .map(str::to_ascii_lowercase)
                    .collect();
                labels
                    .iter()
                    .position(|l| words.contains(&l.to_ascii_lowercase()))
            });
            let mut row = vec![0f32; labels.len()];
            match named {
                Some(label) => {
                    row[label] = 1.0;
                    predictions.push(label);
                }
                None => {
                    // An answer naming no label counts as wrong.
                    unparsed += 1;
                    row.iter_mut().for_each(|p| *p = 1.0 / labels.len() as f32);
                    predictions.push((y[i] + 1) % labels.len());
                }
            }
            probabilities.push(row);
            let (input, output) = HAIKU_USD_PER_M_TOKENS;
            cost += (f64::from(generated.input_tokens) * input
                + f64::from(generated.output_tokens) * output)
                / 1e6;
        }
        let mut answers_report = CloudAnswers {
            probabilities,
            predictions,
            latencies: answers.iter().map(|(_, d)| *d).collect(),
            cost_usd: cost,
            wall,
        };
        if bedrock.model_id() != mesh_cloud::DEFAULT_BEDROCK_MODEL {
            answers_report.cost_usd = f64::NAN;
        }
        models.push(answers_report.report(
            format!(
                "{} on Bedrock, zero-shot (asked for one label at temperature 0; {unparsed} answers named no label and count as wrong)",
                bedrock.model_id()
            ),
            bedrock.model_id().to_string(),
            y,
            labels.len(),
            options,
        ));
    }
    Ok(models)
}

/// Reads labelled points: CSV with numeric feature columns and a `label` column, or JSON
/// lines `{"point": [...], "label": ...}`; label 1 / `anomaly` / `true` is an anomaly.
pub fn read_points(path: &Path) -> anyhow::Result<(Vec<Vec<f64>>, Vec<usize>)> {
    let anomalous = |text: &str, row: usize| -> anyhow::Result<usize> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "anomaly" | "true" | "outlier" => Ok(1),
            "0" | "normal" | "false" | "inlier" => Ok(0),
            other => {
                anyhow::bail!("record {row}: label `{other}` is neither 1/anomaly nor 0/normal")
            }
        }
    };
    let (mut points, mut labels) = (vec![], vec![]);
    if is_csv(path) {
        let table = CsvTable::read(path)?;
        let (headers, label) = (&table.headers, table.column("label", path)?);
        for (row, record) in table.records.iter().enumerate() {
            let point = record
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != label)
                .map(|(i, cell)| {
                    cell.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .with_context(|| {
                            format!(
                                "record {}: `{}` is not a finite number",
                                row + 1,
                                &headers[i]
                            )
                        })
                })
                .collect::<anyhow::Result<Vec<f64>>>()?;
            points.push(point);
            labels.push(anomalous(&record[label], row + 1)?);
        }
    } else {
        for (line, v) in read_json_lines(path)? {
            let point: Vec<f64> = serde_json::from_value(v["point"].clone())
                .with_context(|| format!("line {line}: `point` must be an array of numbers"))?;
            let label = match &v["label"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            points.push(point);
            labels.push(anomalous(&label, line)?);
        }
    }
    anyhow::ensure!(!points.is_empty(), "{} holds no records", path.display());
    anyhow::ensure!(
        points.iter().all(|p| p.len() == points[0].len()),
        "every record needs the same number of features"
    );
    Ok((points, labels))
}

/// Robust z-scores: the largest |x - median| / (1.4826 MAD) over the features of each point.
fn robust_z(points: &[Vec<f64>]) -> Vec<f64> {
    let dim = points[0].len();
    use mesh_numeric::stats::{mad, median};
    let centres: Vec<(f64, f64)> = (0..dim)
        .map(|j| {
            let column: Vec<f64> = points.iter().map(|p| p[j]).collect();
            let m = median(&column);
            (m, (1.4826 * mad(&column, m)).max(1e-12))
        })
        .collect();
    points
        .iter()
        .map(|p| {
            p.iter()
                .zip(&centres)
                .map(|(x, (m, s))| (x - m).abs() / s)
                .fold(0.0, f64::max)
        })
        .collect()
}

/// Robust z-scores above this flag an anomaly (Iglewicz and Hoaglin's modified z-score rule).
const ROBUST_Z_THRESHOLD: f64 = 3.5;

/// The anomaly task: the agent's isolation forest against robust z-scores.
fn compare_anomaly(
    options: &CompareOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Compared> {
    let (points, y) = read_points(&options.data)?;
    let labels = vec!["normal".to_string(), "anomaly".to_string()];
    let n = points.len();
    progress.set_message(format!("isolation forest on {n} points"));
    let agent_model = format!(
        "isolation-forest@{}",
        mesh_agents::anomaly::DETECTOR_VERSION
    );
    let request: mesh_agents::anomaly::AnomalyRequest =
        serde_json::from_value(serde_json::json!({
            "points": points, "return_scores": true, "seed": options.seed,
        }))?;
    let started = Instant::now();
    let answer =
        mesh_agents::anomaly::detect(&request, &agent_model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let forest_time = started.elapsed();
    let scores = answer.anomaly_scores.context("scores were asked for")?;
    let mut flagged = vec![0; n];
    for a in &answer.anomalies {
        flagged[a.index] = 1;
    }
    let as_probabilities =
        |s: &[f64]| -> Vec<Vec<f32>> { s.iter().map(|v| vec![0.0, *v as f32]).collect() };
    let batch_timing = |total: Duration| Timing {
        p50: total / n as u32,
        p95: total / n as u32,
        per_record_batched: total / n as u32,
    };
    let mut models = vec![assess(
        format!("isolation forest (the anomaly agent: 100 trees, flagged by its automatic threshold, fit {:.2}s)", forest_time.as_secs_f64()),
        answer.model_used.clone(),
        "local model",
        &as_probabilities(&scores),
        Some(flagged),
        &y,
        2,
        batch_timing(forest_time),
        options,
    )];
    let started = Instant::now();
    let z = robust_z(&points);
    let z_time = started.elapsed();
    let flagged: Vec<usize> = z
        .iter()
        .map(|v| usize::from(*v > ROBUST_Z_THRESHOLD))
        .collect();
    models.push(assess(
        format!("robust z-score (largest abs(x - median) / 1.4826 MAD over the features, flagged above {ROBUST_Z_THRESHOLD})"),
        "robust-z".into(),
        "baseline",
        &as_probabilities(&z),
        Some(flagged),
        &y,
        2,
        batch_timing(z_time),
        options,
    ));
    Ok((labels, y, models))
}

/// The churn task: the served churn model (`mlc-churn`, latest version) against the same
/// regression cross-fitted on the file, and the majority class.
fn compare_churn(
    options: &CompareOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Compared> {
    use mesh_agents::client_health::{
        churn_log_odds, fit_once, Learner, ModelStore, DEFAULT_MODEL_ID,
    };
    let records =
        mesh_numeric::tabular::read_csv_records(&options.data).map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(
        !records.is_empty(),
        "{} holds no records",
        options.data.display()
    );
    let target = ["label", "churn", "churned"]
        .into_iter()
        .find(|t| records[0].contains_key(*t))
        .context(
            "the file needs a `label`, `churn` or `churned` column (yes/no, true/false or 1/0)",
        )?;
    let y: Vec<usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.get(target)
                .and_then(mesh_numeric::tabular::binary_target)
                .map(usize::from)
                .with_context(|| {
                    format!(
                        "record {}: `{target}` is not yes/no, true/false or 1/0",
                        i + 1
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let labels = vec!["stays".to_string(), "churns".to_string()];
    let probabilities = |scores: Vec<f64>| -> Vec<Vec<f32>> {
        scores
            .into_iter()
            .map(|p| vec![(1.0 - p) as f32, p as f32])
            .collect()
    };
    let mut models = vec![];

    let store = ModelStore::new(
        options
            .models_dir
            .join(mesh_agents::loader::CLIENT_HEALTH_DIR),
    );
    if let Ok(served) = store.load(DEFAULT_MODEL_ID, None) {
        progress.set_message(format!(
            "{} on {} records",
            served.versioned_id(),
            records.len()
        ));
        let (scored, timing) = time_model(&records, |batch| {
            Ok(probabilities(
                batch
                    .iter()
                    .map(|r| sigmoid(churn_log_odds(&served, r)))
                    .collect(),
            ))
        })?;
        let mut report = assess(
            format!(
                "served churn model ({}: logistic regression on modeldata's mlc_churn)",
                served.versioned_id()
            ),
            served.versioned_id(),
            "local model",
            &scored,
            None,
            &y,
            2,
            timing,
            options,
        );
        report.trained_on = vec![served.data_source.clone()];
        models.push(report);
    }

    progress.set_message("logistic regression cross-fitted on the file");
    let truth: Vec<bool> = y.iter().map(|&l| l == 1).collect();
    let folds = mesh_numeric::tabular::stratified_folds(&truth, FOLDS, options.seed);
    let mut scores = vec![0.0; records.len()];
    let started = Instant::now();
    for fold in 0..FOLDS {
        let train: Vec<mesh_numeric::tabular::Record> = (0..records.len())
            .filter(|&i| folds[i] != fold)
            .map(|i| records[i].clone())
            .collect();
        let model = fit_once(&train, target, Learner::LogisticRegression)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for i in (0..records.len()).filter(|&i| folds[i] == fold) {
            scores[i] = sigmoid(churn_log_odds(&model, &records[i]));
        }
    }
    let fit_time = started.elapsed();
    models.push(assess(
        format!(
            "the same regression cross-fitted on the file ({FOLDS} stratified folds, fit {:.1}s)",
            fit_time.as_secs_f64()
        ),
        "churn-logistic-cross-fitted".into(),
        "baseline",
        &probabilities(scores),
        None,
        &y,
        2,
        Timing::default(),
        options,
    ));
    models.push(assess(
        "majority class (cross-fitted class frequencies)".into(),
        "majority-class".into(),
        "baseline",
        &cross_fit_priors(&y, 2, &folds),
        None,
        &y,
        2,
        Timing::default(),
        options,
    ));
    Ok((labels, y, models))
}

/// Measured speed of a model.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    p50: Duration,
    p95: Duration,
    per_record_batched: Duration,
}

/// Runs `score` over all records in batches of 32 (throughput, and the probabilities), then
/// one at a time over the first records (latency).
fn time_model<T: Clone>(
    texts: &[T],
    mut score: impl FnMut(&[T]) -> anyhow::Result<Vec<Vec<f32>>>,
) -> anyhow::Result<(Vec<Vec<f32>>, Timing)> {
    let started = Instant::now();
    let mut probabilities = Vec::with_capacity(texts.len());
    for batch in texts.chunks(32) {
        probabilities.extend(score(batch)?);
    }
    let per_record_batched = started.elapsed() / texts.len().max(1) as u32;
    let mut single: Vec<Duration> = texts
        .iter()
        .take(LATENCY_SAMPLE)
        .map(|t| {
            let s = Instant::now();
            score(std::slice::from_ref(t)).map(|_| s.elapsed())
        })
        .collect::<anyhow::Result<_>>()?;
    single.sort();
    let at = |q: f64| {
        single
            .get(((single.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok((
        probabilities,
        Timing {
            p50: at(0.5),
            p95: at(0.95),
            per_record_batched,
        },
    ))
}

/// Unigrams and bigrams of lower-cased word tokens, hashed (FNV-1a) into presence buckets,
/// L2-normalised.
fn hashed_bag_of_words(text: &str) -> Vec<f64> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut x = vec![0.0; HASH_BUCKETS];
    let fnv = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    for (i, w) in words.iter().enumerate() {
        x[(fnv(w) % HASH_BUCKETS as u64) as usize] = 1.0;
        if let Some(next) = words.get(i + 1) {
            x[(fnv(&format!("{w} {next}")) % HASH_BUCKETS as u64) as usize] = 1.0;
        }
    }
    let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        x.iter_mut().for_each(|v| *v /= norm);
    }
    x
}

/// Out-of-fold class probabilities of one-vs-rest logistic regressions (L2 1.0), normalised.
fn cross_fit_logistic(
    x: &[Vec<f64>],
    y: &[usize],
    n_labels: usize,
    folds: &[usize],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = vec![vec![0f32; n_labels]; x.len()];
    for fold in 0..FOLDS {
        let train: Vec<usize> = (0..x.len()).filter(|&i| folds[i] != fold).collect();
        let tx: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
        let classes: Vec<usize> = if n_labels == 2 {
            vec![1]
        } else {
            (0..n_labels).collect()
        };
        let mut scores = vec![vec![0f64; n_labels]; x.len()];
        for &class in &classes {
            let ty: Vec<bool> = train.iter().map(|&i| y[i] == class).collect();
            if ty.iter().all(|t| *t) || ty.iter().all(|t| !*t) {
                continue; // a class absent from the training folds scores 0
            }
            let model = Logistic::fit(&tx, &ty, 1.0).map_err(|e| anyhow::anyhow!("{e}"))?;
            for i in (0..x.len()).filter(|&i| folds[i] == fold) {
                scores[i][class] = model.probability(&x[i]);
            }
        }
        for i in (0..x.len()).filter(|&i| folds[i] == fold) {
            out[i] = if n_labels == 2 {
                vec![(1.0 - scores[i][1]) as f32, scores[i][1] as f32]
            } else {
                let total: f64 = scores[i].iter().sum::<f64>().max(1e-12);
                scores[i].iter().map(|s| (s / total) as f32).collect()
            };
        }
    }
    Ok(out)
}

/// Out-of-fold class frequencies (the majority class's prediction, with its probabilities).
fn cross_fit_priors(y: &[usize], n_labels: usize, folds: &[usize]) -> Vec<Vec<f32>> {
    (0..y.len())
        .map(|i| {
            let mut counts = vec![0f32; n_labels];
            for j in (0..y.len()).filter(|&j| folds[j] != folds[i]) {
                counts[y[j]] += 1.0;
            }
            let total: f32 = counts.iter().sum::<f32>().max(1.0);
            counts.iter().map(|c| c / total).collect()
        })
        .collect()
}

use mesh_numeric::tabular::roc_auc;

/// ROC curve points of scores for a binary truth, from (0, 0) to (1, 1).
fn roc_curve(scores: &[f64], truth: &[bool]) -> Vec<(f64, f64)> {
    let positives = truth.iter().filter(|t| **t).count().max(1) as f64;
    let negatives = truth.iter().filter(|t| !**t).count().max(1) as f64;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if truth[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push((fp / negatives, tp / positives));
    }
    points
}

fn auc_of(probabilities: &[Vec<f32>], y: &[usize], n_labels: usize, rows: &[usize]) -> f64 {
    let classes: Vec<usize> = if n_labels == 2 {
        vec![1]
    } else {
        (0..n_labels).collect()
    };
    let aucs: Vec<f64> = classes
        .iter()
        .map(|&c| {
            let scores: Vec<f64> = rows
                .iter()
                .map(|&i| f64::from(probabilities[i][c]))
                .collect();
            let truth: Vec<bool> = rows.iter().map(|&i| y[i] == c).collect();
            roc_auc(&scores, &truth)
        })
        .filter(|a| a.is_finite())
        .collect();
    aucs.iter().sum::<f64>() / aucs.len().max(1) as f64
}

/// The figures of one model, with bootstrap intervals.
#[allow(clippy::too_many_arguments)]
fn assess(
    name: String,
    model_used: String,
    kind: &'static str,
    probabilities: &[Vec<f32>],
    predictions: Option<Vec<usize>>,
    y: &[usize],
    n_labels: usize,
    timing: Timing,
    options: &CompareOptions,
) -> ModelReport {
    let predictions: Vec<usize> =
        predictions.unwrap_or_else(|| probabilities.iter().map(|p| argmax(p)).collect());
    let figures = |rows: &[usize]| -> [f64; 3] {
        let p: Vec<usize> = rows.iter().map(|&i| predictions[i]).collect();
        let t: Vec<usize> = rows.iter().map(|&i| y[i]).collect();
        [
            accuracy(&p, &t),
            macro_f1(&p, &t, n_labels),
            auc_of(probabilities, y, n_labels, rows),
        ]
    };
    let [accuracy, macro_f1, roc_auc] = bootstrap(y.len(), options, figures);
    let roc_curve = if n_labels == 2 {
        let scores: Vec<f64> = probabilities.iter().map(|p| f64::from(p[1])).collect();
        let truth: Vec<bool> = y.iter().map(|&l| l == 1).collect();
        roc_curve(&scores, &truth)
    } else {
        // Micro-averaged one-vs-rest: every (record, class) pair is one binary decision.
        let scores: Vec<f64> = probabilities
            .iter()
            .flatten()
            .map(|p| f64::from(*p))
            .collect();
        let truth: Vec<bool> = y
            .iter()
            .flat_map(|&l| (0..n_labels).map(move |c| c == l))
            .collect();
        roc_curve(&scores, &truth)
    };
    let seconds = timing.per_record_batched.as_secs_f64();
    ModelReport {
        name,
        model_used,
        kind,
        accuracy,
        macro_f1,
        roc_auc,
        roc_curve,
        predictions,
        trained_on: vec![],
        latency_p50_ms: timing.p50.as_secs_f64() * 1e3,
        latency_p95_ms: timing.p95.as_secs_f64() * 1e3,
        throughput_per_s: if seconds > 0.0 { 1.0 / seconds } else { 0.0 },
        cost_per_1000_usd: cost_per_1000(seconds),
    }
}

/// Lambda compute cost of 1,000 records at `seconds` each (one vCPU).
fn cost_per_1000(seconds: f64) -> f64 {
    seconds * 1000.0 * LAMBDA_MEMORY_GB * LAMBDA_USD_PER_GB_S
}

/// `K` figures of `n` rows with 95% percentile intervals over `options.bootstrap` seeded
/// resamples of the rows (non-finite resample figures are left out).
fn bootstrap<const K: usize>(
    n: usize,
    options: &CompareOptions,
    figures: impl Fn(&[usize]) -> [f64; K],
) -> [Estimate; K] {
    let point = figures(&(0..n).collect::<Vec<_>>());
    let mut rng = SplitMix64::new(options.seed ^ 0xB007);
    let mut samples: [Vec<f64>; K] = std::array::from_fn(|_| vec![]);
    for _ in 0..options.bootstrap {
        let rows: Vec<usize> = (0..n)
            .map(|_| (rng.next_u64() % n as u64) as usize)
            .collect();
        for (k, v) in figures(&rows).into_iter().enumerate() {
            if v.is_finite() {
                samples[k].push(v);
            }
        }
    }
    std::array::from_fn(|k| {
        let s = &mut samples[k];
        s.sort_by(f64::total_cmp);
        let at = |q: f64| {
            s.get(((s.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        Estimate {
            value: point[k],
            ci_low: at(0.025),
            ci_high: at(0.975),
        }
    })
}

/// Latency, throughput and cost cells ("-" for a model that is not timed).
fn speed(m: &ModelReport) -> (String, String, String) {
    if m.throughput_per_s == 0.0 {
        return ("-".into(), "-".into(), "-".into());
    }
    (
        format!("{:.2} / {:.2}", m.latency_p50_ms, m.latency_p95_ms),
        format!("{:.0}", m.throughput_per_s),
        if m.cost_per_1000_usd.is_finite() {
            format!("{:.2e}", m.cost_per_1000_usd)
        } else {
            "-".into()
        },
    )
}

/// An estimate with its interval, to `digits` decimals: `0.912 [0.880, 0.940]`.
fn interval(e: &Estimate, digits: usize) -> String {
    format!(
        "{:.digits$} [{:.digits$}, {:.digits$}]",
        e.value, e.ci_low, e.ci_high
    )
}

/// A Markdown table's header row and its separator.
fn table_header(md: &mut String, columns: &[&str]) {
    let _ = writeln!(md, "| {} |", columns.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(columns.len()));
}

/// The report as Markdown.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Model comparison: {:?}\n", report.task);
    if let Some(comparison) = &report.forecast {
        let _ = writeln!(
            md,
            "{} series from `{}` (sha256 `{}`), each forecast over its held-out end; seed {}, {} bootstrap resamples of the held-out points (95% intervals).\n",
            report.records, report.data, &report.data_sha256[..16], report.seed, report.bootstrap_resamples
        );
        forecast::markdown(comparison, &mut md);
        let _ = writeln!(
            md,
            "\nQuality figures depend only on the data. Times are measured on this machine; the cost assumes Lambda at {LAMBDA_MEMORY_GB} GB (one vCPU), ${LAMBDA_USD_PER_GB_S} per GB-second."
        );
        return md;
    }
    let _ = writeln!(
        md,
        "{} records from `{}` (sha256 `{}`), labels {} with counts {:?}; seed {}, {} bootstrap resamples (95% intervals).\n",
        report.records, report.data, &report.data_sha256[..16], report.labels.join(" / "), report.label_counts, report.seed, report.bootstrap_resamples
    );
    table_header(
        &mut md,
        &[
            "model",
            "kind",
            "accuracy",
            "macro F1",
            "ROC-AUC",
            "p50 / p95 ms per record",
            "records/s (batched)",
            "$ per 1,000",
        ],
    );
    for m in &report.models {
        let _ = writeln!(
            md,
            "| {} (`{}`) | {} | {} | {} | {} | {} | {} | {} |",
            m.name,
            m.model_used,
            m.kind,
            interval(&m.accuracy, 3),
            interval(&m.macro_f1, 3),
            interval(&m.roc_auc, 3),
            speed(m).0,
            speed(m).1,
            speed(m).2
        );
    }
    for m in report.models.iter().filter(|m| !m.trained_on.is_empty()) {
        let _ = writeln!(
            md,
            "\n`{}` was trained on {}: records of those sets give training-set figures.",
            m.model_used,
            m.trained_on.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "\nQuality figures depend only on the data and the seed. Times are measured on this machine; the cost assumes Lambda at {LAMBDA_MEMORY_GB} GB (one vCPU), ${LAMBDA_USD_PER_GB_S} per GB-second, at the batched rate."
    );
    md
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// A model's place on the quality-against-latency plot.
struct ScatterPoint<'a> {
    model_used: &'a str,
    latency_p50_ms: f64,
    quality: Estimate,
}

/// A quality figure (with its interval, on 0..`y_max`) against p50 latency, log scale.
fn scatter_svg(points: &[ScatterPoint], per: &str, y_label: &str, y_max: f64) -> String {
    let (w, h, pad) = (600.0, 320.0, 50.0);
    let timed: Vec<&ScatterPoint> = points.iter().filter(|m| m.latency_p50_ms > 0.0).collect();
    let lo = timed
        .iter()
        .map(|m| m.latency_p50_ms.log10())
        .fold(f64::INFINITY, f64::min)
        .floor();
    let hi = timed
        .iter()
        .map(|m| m.latency_p50_ms.log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        .max(lo + 1.0);
    let x = |ms: f64| pad + (ms.log10() - lo) / (hi - lo) * (w - 2.0 * pad - 140.0);
    let y = |v: f64| h - pad - (v / y_max).clamp(0.0, 1.0) * (h - 2.0 * pad);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{y_label} against latency"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = write!(
        svg,
        r#"<line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>"#,
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">p50 latency per {per} (ms, log scale)</text><text x="14" y="{}" font-size="12" transform="rotate(-90 14 {})" text-anchor="middle">{y_label}</text>"#,
        w / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0
    );
    for decade in (lo as i32)..=(hi as i32) {
        let ms = 10f64.powi(decade);
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{ms}</text>"#,
            x(ms),
            h - pad + 14.0
        );
    }
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0].map(|t| t * y_max) {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{tick:.3}</text>"#,
            pad - 4.0,
            y(tick) + 3.0
        );
    }
    for (i, m) in timed.iter().enumerate() {
        let (cx, colour) = (x(m.latency_p50_ms), COLOURS[i % COLOURS.len()]);
        let _ = write!(
            svg,
            r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{colour}"/><circle cx="{cx:.1}" cy="{:.1}" r="5" fill="{colour}"><title>{}: {:.3}</title></circle><text x="{:.1}" y="{:.1}" font-size="10" fill="{colour}">{}</text>"#,
            y(m.quality.ci_low),
            y(m.quality.ci_high),
            y(m.quality.value),
            escape(m.model_used),
            m.quality.value,
            cx + 7.0,
            y(m.quality.value) - 6.0,
            escape(m.model_used.split(" (").next().unwrap_or(m.model_used))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// ROC curves of the binary tasks.
fn roc_svg(report: &Report) -> String {
    let (s, pad) = (320.0, 40.0);
    let scale = |v: f64| pad + v * (s - 2.0 * pad);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{s}" height="{s}" role="img" aria-label="ROC curves"><rect width="100%" height="100%" fill="white"/><line x1="{pad}" y1="{}" x2="{}" y2="{pad}" stroke="silver" stroke-dasharray="4"/>"#,
        s - pad,
        s - pad
    );
    let _ = write!(
        svg,
        r#"<rect x="{pad}" y="{pad}" width="{}" height="{}" fill="none" stroke="black"/><text x="{}" y="{}" font-size="11" text-anchor="middle">false positive rate</text><text x="12" y="{}" font-size="11" transform="rotate(-90 12 {})" text-anchor="middle">true positive rate</text>"#,
        s - 2.0 * pad,
        s - 2.0 * pad,
        s / 2.0,
        s - 8.0,
        s / 2.0,
        s / 2.0
    );
    for (i, m) in report
        .models
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.roc_curve.is_empty())
    {
        let points: Vec<String> = m
            .roc_curve
            .iter()
            .map(|(f, t)| format!("{:.1},{:.1}", scale(*f), s - scale(*t)))
            .collect();
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{} AUC {:.3}</title></polyline><text x="{}" y="{}" font-size="10" fill="{colour}">{} AUC {:.3}</text>"#,
            points.join(" "),
            escape(&m.model_used),
            m.roc_auc.value,
            pad + 110.0,
            s - pad - 12.0 - 12.0 * i as f64,
            escape(&m.model_used),
            m.roc_auc.value
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as a self-contained HTML page (table and inline SVG plots).
pub fn html(report: &Report) -> String {
    let mut page = format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model comparison: {:?}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head><body>", report.task);
    if let Some(comparison) = &report.forecast {
        let _ = write!(page, "<h1>Model comparison: {:?}</h1><p>{} series from <code>{}</code> (sha256 <code>{}</code>), each forecast over its held-out end; seed {}; {} bootstrap resamples of the held-out points, 95% intervals.</p>",
            report.task, report.records, escape(&report.data), &report.data_sha256[..16], report.seed, report.bootstrap_resamples);
        page.push_str(&forecast::html_table(comparison));
        let points: Vec<ScatterPoint> = comparison
            .models
            .iter()
            .map(|m| ScatterPoint {
                model_used: &m.model_used,
                latency_p50_ms: m.latency_p50_ms,
                quality: m.smape,
            })
            .collect();
        let y_max = points
            .iter()
            .map(|p| p.quality.ci_high)
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max)
            * 1.1;
        page.push_str("<h2>sMAPE against latency</h2>");
        page.push_str(&scatter_svg(&points, "series", "sMAPE %", y_max));
        page.push_str("<h2>Forecast fan charts</h2>");
        for series in &comparison.series {
            let _ = write!(page, "<h3>{}</h3>", escape(&series.name));
            page.push_str(&forecast::fan_chart_svg(series, comparison.level));
        }
        page.push_str("<p>Quality figures depend only on the data; times are measurements of the machine that ran the comparison.</p></body></html>\n");
        return page;
    }
    let _ = write!(page, "<h1>Model comparison: {:?}</h1><p>{} records from <code>{}</code> (sha256 <code>{}</code>); labels {}; seed {}; {} bootstrap resamples, 95% intervals.</p>",
        report.task, report.records, escape(&report.data), &report.data_sha256[..16], escape(&report.labels.join(" / ")), report.seed, report.bootstrap_resamples);
    page.push_str("<table><tr><th>model</th><th>kind</th><th>accuracy</th><th>macro F1</th><th>ROC-AUC</th><th>p50 / p95 ms</th><th>records/s</th><th>$ per 1,000</th></tr>");
    for m in &report.models {
        let (latency, rate, cost) = speed(m);
        let _ = write!(page, "<tr><td>{} (<code>{}</code>)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{latency}</td><td>{rate}</td><td>{cost}</td></tr>",
            escape(&m.name), escape(&m.model_used), m.kind, interval(&m.accuracy, 3), interval(&m.macro_f1, 3), interval(&m.roc_auc, 3));
    }
    page.push_str("</table><h2>Accuracy against latency</h2>");
    let points: Vec<ScatterPoint> = report
        .models
        .iter()
        .map(|m| ScatterPoint {
            model_used: &m.model_used,
            latency_p50_ms: m.latency_p50_ms,
            quality: m.accuracy,
        })
        .collect();
    page.push_str(&scatter_svg(&points, "record", "accuracy", 1.0));
    page.push_str(if report.labels.len() == 2 {
        "<h2>ROC curves</h2>"
    } else {
        "<h2>ROC curves (micro-averaged one-vs-rest)</h2>"
    });
    page.push_str(&roc_svg(report));
    page.push_str("<p>Quality figures depend only on the data and the seed; times are measurements of the machine that ran the comparison.</p></body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_matches_hand_computed_cases() {
        // 3 positives, 2 negatives: pairs ranked right 5 of 6 -> 5/6.
        let scores = [0.9, 0.8, 0.4, 0.7, 0.1];
        let truth = [true, true, true, false, false];
        assert!((roc_auc(&scores, &truth) - 5.0 / 6.0).abs() < 1e-12);
        // A tie between a positive and a negative counts half.
        assert!((roc_auc(&[0.5, 0.5], &[true, false]) - 0.5).abs() < 1e-12);
        assert!(roc_auc(&[0.2, 0.3], &[true, true]).is_nan());
        let curve = roc_curve(&scores, &truth);
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
    }

    #[test]
    fn bag_of_words_is_normalised_and_order_sensitive_through_bigrams() {
        let a = hashed_bag_of_words("not good at all");
        let b = hashed_bag_of_words("good, not at all");
        let norm = a.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-12);
        assert_ne!(a, b);
    }
}
