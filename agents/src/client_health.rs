//! `POST /client-health/train` and `POST /client-health/predict`: churn models trained on the
//! caller's own tabular data (any schema), versioned and persisted, plus a default model
//! trained on a real churn data set (modeldata's `mlc_churn`, see `models/manifest.toml`).
//!
//! Two learners compete on the [`mesh_numeric::tabular`] encoding: an L2-regularised
//! logistic regression ([`mesh_numeric::logistic`], fitted exactly by Newton's method; the same
//! objective as scikit-learn's `C = 1`) and gradient-boosted trees ([`mesh_numeric::gbm`], at
//! scikit-learn HistGradientBoosting's default settings), which find interactions and
//! thresholds a linear model cannot. Training scores both by stratified 5-fold
//! cross-validation (the encoder refitted on each training fold), keeps the one with the higher
//! mean ROC-AUC (`learner`, `cv_auc_by_learner`; the logistic regression on a tie), reports its
//! `cv_auc`, then fits it on every record. `churn_risk` is the model's probability of churn.
//! Per-column contributions are exact in log-odds, and the baseline plus the contributions is
//! the prediction's log-odds: for the regression, each column's sum of coefficient x (encoded
//! value - training mean of that feature), against the average training customer; for the
//! trees, TreeSHAP values summed over each column's features, against the trees' expected
//! log-odds. `risk_level`: Low < 0.25 <= Medium < 0.5 <= High < 0.75 <= Critical; `priority`
//! 1 (Critical) to 4 (Low); `health_score` = 100 (1 - churn_risk); `confidence` = the
//! probability of the predicted class.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mesh_numeric::gbm::Gbm;
use mesh_numeric::logistic::{Logistic, LogisticError};
use mesh_numeric::stats::sigmoid;
use mesh_numeric::tabular::{
    binary_target, roc_auc, stratified_folds, ColumnEncoding, Encoder, Record,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::user_state::UserState;
use crate::{now_iso8601, Agent, AgentError, AgentKind};

/// Id of the model trained on modeldata's `mlc_churn` by `msp-mesh prepare`.
pub const DEFAULT_MODEL_ID: &str = "mlc-churn";
/// Most records one training request may hold.
pub const MAX_RECORDS: usize = 200_000;
/// Most columns of a training set.
pub const MAX_COLUMNS: usize = 500;
/// Most features a model may have (numeric columns, missing-value indicators and one-hot
/// levels): each Newton step holds a (features + 1)² Hessian and factorises it.
pub const MAX_FEATURES: usize = 1_024;
/// Most records x features² of one training request: the work of forming one Newton step's
/// Hessian, which each of the six fits (five folds and the final model) repeats per step.
pub const MAX_TRAINING_WORK: f64 = 2e9;
/// Cross-validation folds.
pub const CV_FOLDS: usize = 5;
/// Seed of the fold assignment.
const CV_SEED: u64 = 7;

/// Which learner a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Learner {
    /// L2 logistic regression ([`ChurnModel::coefficients`]).
    #[default]
    LogisticRegression,
    /// Gradient-boosted trees ([`ChurnModel::trees`]).
    GradientBoostedTrees,
}

impl Learner {
    /// Both, in the order training tries them.
    pub const ALL: [Learner; 2] = [Learner::LogisticRegression, Learner::GradientBoostedTrees];

    /// How `model_used` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::LogisticRegression => "L2 logistic regression",
            Self::GradientBoostedTrees => "gradient-boosted trees",
        }
    }

    /// Its key in [`TrainingMetrics::cv_auc_by_learner`].
    pub fn key(self) -> &'static str {
        match self {
            Self::LogisticRegression => "logistic_regression",
            Self::GradientBoostedTrees => "gradient_boosted_trees",
        }
    }
}

/// A persisted churn model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnModel {
    pub model_id: String,
    pub version: u32,
    pub target: String,
    pub encoder: Encoder,
    /// Coefficients of the encoded features (log-odds of churn per unit); empty for trees.
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// Training mean of each encoded feature (the contribution baseline).
    pub feature_means: Vec<f64>,
    pub metrics: TrainingMetrics,
    pub trained_at: String,
    /// Where the training data came from.
    pub data_source: String,
    /// The trees, when gradient-boosted trees won the cross-validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<Gbm>,
}

/// What training measured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrainingMetrics {
    /// Mean ROC-AUC over the folds.
    pub cv_auc: f64,
    /// ROC-AUC of each fold.
    pub cv_fold_auc: Vec<f64>,
    pub cv_folds: usize,
    pub records: usize,
    pub churned: usize,
    /// Share of churned records.
    pub churn_rate: f64,
    pub features: usize,
    /// The learner the cross-validation chose.
    #[serde(default)]
    pub learner: Learner,
    /// Each learner's mean cross-validated ROC-AUC (empty for models trained before the
    /// learners competed).
    #[serde(default)]
    pub cv_auc_by_learner: std::collections::BTreeMap<String, f64>,
}

impl ChurnModel {
    /// `client-health/<id>@v<version>`.
    pub fn versioned_id(&self) -> String {
        format!("client-health/{}@v{}", self.model_id, self.version)
    }

    /// Which learner it is.
    pub fn learner(&self) -> Learner {
        match self.trees {
            Some(_) => Learner::GradientBoostedTrees,
            None => Learner::LogisticRegression,
        }
    }

    /// Log-odds of churn for rows of encoded features.
    fn log_odds(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        match &self.trees {
            Some(trees) => trees.log_odds(rows),
            None => rows
                .iter()
                .map(|features| {
                    self.intercept
                        + features
                            .iter()
                            .zip(&self.coefficients)
                            .map(|(x, w)| x * w)
                            .sum::<f64>()
                })
                .collect(),
        }
    }
}

/// Trains a model on `records` (the target column holds yes/no, true/false or 1/0).
pub fn train(
    model_id: &str,
    records: &[Record],
    target: &str,
    data_source: &str,
) -> Result<ChurnModel, AgentError> {
    train_until(model_id, records, target, data_source, &|| false)
}

/// [`train`] that ends early, with [`training_stopped`]'s error, once `stop` returns true; it
/// is checked between folds and inside every fit ([`Logistic::fit_until`]).
pub fn train_until(
    model_id: &str,
    records: &[Record],
    target: &str,
    data_source: &str,
    stop: &dyn Fn() -> bool,
) -> Result<ChurnModel, AgentError> {
    validate_model_id("model_id", model_id)?;
    if records.len() > MAX_RECORDS {
        return Err(AgentError::invalid(
            "records",
            format!("holds {} records; at most {MAX_RECORDS}", records.len()),
        ));
    }
    let labels = parse_labels(records, target)?;
    let churned = labels.iter().filter(|&&l| l).count();
    if churned < CV_FOLDS || records.len() - churned < CV_FOLDS {
        return Err(AgentError::invalid(
            "records",
            format!(
                "{churned} churned and {} retained records; each class needs at least {CV_FOLDS} for cross-validation",
                records.len() - churned
            ),
        ));
    }
    let all: Vec<&Record> = records.iter().collect();
    let columns = all
        .iter()
        .flat_map(|r| r.keys())
        .collect::<std::collections::HashSet<_>>()
        .len();
    if columns > MAX_COLUMNS {
        return Err(AgentError::invalid(
            "records",
            format!("holds {columns} columns; at most {MAX_COLUMNS}"),
        ));
    }
    if columns < 2 {
        return Err(AgentError::invalid(
            "records",
            "the records hold no feature column besides the target",
        ));
    }
    check_training_cost(records.len(), Encoder::fit(&all, &[target]).width())?;

    let folds = stratified_folds(&labels, CV_FOLDS, CV_SEED);
    let mut fold_auc = [Vec::with_capacity(CV_FOLDS), Vec::with_capacity(CV_FOLDS)];
    for f in 0..CV_FOLDS {
        let (train_idx, test_idx): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| folds[i] != f);
        let truth: Vec<bool> = test_idx.iter().map(|&i| labels[i]).collect();
        let fitted = fit(&all, &labels, &train_idx, target, &Learner::ALL, stop)?;
        let rows: Vec<Vec<f64>> = test_idx
            .iter()
            .map(|&i| fitted[0].encoder.encode(all[i]).features)
            .collect();
        for (model, aucs) in fitted.iter().zip(&mut fold_auc) {
            aucs.push(roc_auc(&model.log_odds(&rows), &truth));
        }
    }
    let mean = |aucs: &[f64]| aucs.iter().sum::<f64>() / aucs.len() as f64;
    let [logistic_auc, trees_auc] = fold_auc.each_ref().map(|a| mean(a));
    let (learner, fold_auc) = match trees_auc > logistic_auc {
        true => (Learner::GradientBoostedTrees, fold_auc[1].clone()),
        false => (Learner::LogisticRegression, fold_auc[0].clone()),
    };
    let every: Vec<usize> = (0..records.len()).collect();
    let mut model = fit(&all, &labels, &every, target, &[learner], stop)?.remove(0);
    model.model_id = model_id.to_string();
    model.data_source = data_source.to_string();
    model.metrics = TrainingMetrics {
        cv_auc: mean(&fold_auc),
        cv_fold_auc: fold_auc,
        cv_folds: CV_FOLDS,
        records: records.len(),
        churned,
        churn_rate: churned as f64 / records.len() as f64,
        features: model.encoder.width(),
        learner,
        cv_auc_by_learner: [
            (Learner::LogisticRegression.key().to_string(), logistic_auc),
            (Learner::GradientBoostedTrees.key().to_string(), trees_auc),
        ]
        .into(),
    };
    Ok(model)
}

/// The error of a training stopped because its request is gone.
pub fn training_stopped() -> AgentError {
    AgentError::Unavailable(
        "training stopped: its request is gone (the deadline passed or the client left)".into(),
    )
}

/// Refuses, before any work, a training set whose model would be too wide or too costly to
/// fit ([`MAX_FEATURES`], [`MAX_TRAINING_WORK`]).
fn check_training_cost(records: usize, features: usize) -> Result<(), AgentError> {
    if features > MAX_FEATURES {
        return Err(AgentError::invalid(
            "records",
            format!("the records encode to {features} features (numeric columns, missing-value indicators and one-hot levels); at most {MAX_FEATURES}: drop columns or merge rare levels"),
        ));
    }
    let work = records as f64 * (features as f64).powi(2);
    if work > MAX_TRAINING_WORK {
        return Err(AgentError::invalid(
            "records",
            format!("{records} records x {features}² features is {work:.1e}; a training may take at most {MAX_TRAINING_WORK:.0e}: send fewer records or fewer columns"),
        ));
    }
    Ok(())
}

/// The binary target of every record; a 422 naming `records[i].<target>` otherwise.
fn parse_labels(records: &[Record], target: &str) -> Result<Vec<bool>, AgentError> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = || format!("records[{i}].{target}");
            let value = r
                .get(target)
                .ok_or_else(|| AgentError::invalid(&field(), "the target column is missing"))?;
            binary_target(value).ok_or_else(|| {
                AgentError::invalid(
                    &field(),
                    format!("{value} is not yes/no, true/false or 1/0"),
                )
            })
        })
        .collect()
}

/// Fits one model of `learner` on every record (no cross-validation), for benchmarks.
pub fn fit_once(
    records: &[Record],
    target: &str,
    learner: Learner,
) -> Result<ChurnModel, AgentError> {
    let labels = parse_labels(records, target)?;
    let all: Vec<&Record> = records.iter().collect();
    let every: Vec<usize> = (0..records.len()).collect();
    Ok(fit(&all, &labels, &every, target, &[learner], &|| false)?.remove(0))
}

/// The model's columns, comma-separated (for error messages).
fn column_list(model: &ChurnModel) -> String {
    model
        .encoder
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Log-odds of churn `model` gives `record`.
pub fn churn_log_odds(model: &ChurnModel, record: &Record) -> f64 {
    model.log_odds(&[model.encoder.encode(record).features])[0]
}

/// Fits the encoder on the rows `idx`, then one model of each of `learners` on them (in that
/// order, sharing the encoding).
fn fit(
    records: &[&Record],
    labels: &[bool],
    idx: &[usize],
    target: &str,
    learners: &[Learner],
    stop: &dyn Fn() -> bool,
) -> Result<Vec<ChurnModel>, AgentError> {
    let rows: Vec<&Record> = idx.iter().map(|&i| records[i]).collect();
    let encoder = Encoder::fit(&rows, &[target]);
    let width = encoder.width();
    let x: Vec<Vec<f64>> = rows.iter().map(|r| encoder.encode(r).features).collect();
    let y: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
    let mut feature_means = vec![0.0; width];
    for row in &x {
        for (m, v) in feature_means.iter_mut().zip(row) {
            *m += v / x.len() as f64;
        }
    }
    learners
        .iter()
        .map(|&learner| fit_learner(&encoder, &x, &y, &feature_means, target, learner, stop))
        .collect()
}

/// One model of `learner` on encoded rows `x` (from `encoder`) and labels `y`.
fn fit_learner(
    encoder: &Encoder,
    x: &[Vec<f64>],
    y: &[bool],
    feature_means: &[f64],
    target: &str,
    learner: Learner,
    stop: &dyn Fn() -> bool,
) -> Result<ChurnModel, AgentError> {
    let (coefficients, intercept, trees) = match learner {
        Learner::LogisticRegression => {
            let fitted = Logistic::fit_until(x, y, 1.0, stop).map_err(|e| match e {
                LogisticError::Stopped(_) => training_stopped(),
                e => AgentError::Unavailable(format!("logistic regression failed: {e}")),
            })?;
            (fitted.weights, fitted.intercept, None)
        }
        Learner::GradientBoostedTrees => {
            // The booster has no stop check of its own: checked before it starts.
            if stop() {
                return Err(training_stopped());
            }
            let trees = Gbm::fit(x, y)
                .map_err(|e| AgentError::Unavailable(format!("gradient boosting failed: {e}")))?;
            (vec![], 0.0, Some(trees))
        }
    };
    Ok(ChurnModel {
        model_id: String::new(),
        version: 0,
        target: target.to_string(),
        encoder: encoder.clone(),
        coefficients,
        intercept,
        feature_means: feature_means.to_vec(),
        metrics: TrainingMetrics {
            cv_auc: f64::NAN,
            cv_fold_auc: vec![],
            cv_folds: 0,
            records: x.len(),
            churned: 0,
            churn_rate: 0.0,
            features: encoder.width(),
            learner,
            cv_auc_by_learner: Default::default(),
        },
        trained_at: now_iso8601(),
        data_source: String::new(),
        trees,
    })
}

fn validate_model_id(field: &str, id: &str) -> Result<(), AgentError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AgentError::invalid(
            field,
            "must be 1 to 64 characters of a-z, 0-9, '-' and '_'",
        ))
    }
}

/// Versioned client-health models in two layers: the shipped ones on disk
/// (`<dir>/<model_id>/v<version>.json`, written by `msp-mesh prepare` and the CLI, read-only
/// to a service) and, when the store has one, the shared [`UserState`] that models trained
/// through the API go to (`client-health/<model_id>/v<version, 8 digits>`), so every instance
/// serves them and a restart loses none. A version number is unique across both layers.
#[derive(Clone)]
pub struct ModelStore {
    dir: PathBuf,
    state: Option<Arc<dyn UserState>>,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelStore")
            .field("dir", &self.dir)
            .field("shared", &self.state.is_some())
            .finish()
    }
}

/// Key prefix of the client-health models in the user state.
const STATE_PREFIX: &str = "client-health/";
/// Attempts to claim a version when other instances save the same model at once.
const SAVE_ATTEMPTS: usize = 16;

fn state_key(model_id: &str, version: u32) -> String {
    format!("{STATE_PREFIX}{model_id}/v{version:08}")
}

/// `(model_id, version)` of a user-state key.
fn parse_state_key(key: &str) -> Option<(String, u32)> {
    let (id, version) = key.strip_prefix(STATE_PREFIX)?.rsplit_once("/v")?;
    Some((id.to_string(), version.parse().ok()?))
}

impl ModelStore {
    /// Models on disk only (the CLI and `prepare`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            state: None,
        }
    }

    /// Shipped models in `dir`; models trained from now on go to `state`.
    pub fn shared(dir: impl Into<PathBuf>, state: Arc<dyn UserState>) -> Self {
        Self {
            dir: dir.into(),
            state: Some(state),
        }
    }

    /// The folder of the shipped models.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn disk_versions(&self, model_id: &str) -> Vec<u32> {
        std::fs::read_dir(self.dir.join(model_id))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
            })
            .collect()
    }

    /// Every `(model_id, version)` of the shared layer under `prefix`.
    fn state_versions(&self, prefix: &str) -> Result<Vec<(String, u32)>, AgentError> {
        match &self.state {
            Some(state) => Ok(state
                .keys(prefix)?
                .iter()
                .filter_map(|k| parse_state_key(k))
                .collect()),
            None => Ok(vec![]),
        }
    }

    fn versions(&self, model_id: &str) -> Result<Vec<u32>, AgentError> {
        let mut versions = self.disk_versions(model_id);
        versions.extend(
            self.state_versions(&format!("{STATE_PREFIX}{model_id}/v"))?
                .into_iter()
                .map(|(_, v)| v),
        );
        versions.sort_unstable();
        versions.dedup();
        Ok(versions)
    }

    /// Saves `model` as the next version of its id; returns the version. With a shared state
    /// it goes there (claimed atomically: two instances never write the same version), else
    /// to disk (written atomically).
    pub fn save(&self, model: &mut ChurnModel) -> Result<u32, AgentError> {
        let Some(state) = &self.state else {
            return self
                .save_to_disk(model)
                .map_err(|e| AgentError::Unavailable(format!("could not save the model: {e}")));
        };
        for _ in 0..SAVE_ATTEMPTS {
            model.version = self.versions(&model.model_id)?.last().copied().unwrap_or(0) + 1;
            let bytes = serde_json::to_vec(model).expect("a model serialises");
            if crate::user_state::create(
                state.as_ref(),
                &state_key(&model.model_id, model.version),
                &bytes,
            )? {
                return Ok(model.version);
            }
        }
        Err(AgentError::Unavailable(format!(
            "model `{}`: {SAVE_ATTEMPTS} concurrent saves took every version tried",
            model.model_id
        )))
    }

    fn save_to_disk(&self, model: &mut ChurnModel) -> std::io::Result<u32> {
        let folder = self.dir.join(&model.model_id);
        std::fs::create_dir_all(&folder)?;
        model.version = self
            .disk_versions(&model.model_id)
            .into_iter()
            .max()
            .unwrap_or(0)
            + 1;
        let path = folder.join(format!("v{}.json", model.version));
        mesh_models::write_durably(&path, &serde_json::to_vec_pretty(model)?)?;
        Ok(model.version)
    }

    /// Loads a model (the latest version unless one is named).
    pub fn load(&self, model_id: &str, version: Option<u32>) -> Result<ChurnModel, AgentError> {
        validate_model_id("model_id", model_id)?;
        let version = match version {
            Some(v) => v,
            None => *self.versions(model_id)?.last().ok_or_else(|| {
                AgentError::invalid(
                    "model_id",
                    format!("no model `{model_id}` has been trained"),
                )
            })?,
        };
        let missing = || {
            AgentError::invalid(
                "version",
                format!("model `{model_id}` has no version {version}"),
            )
        };
        let shared = match &self.state {
            Some(state) => state.get(&state_key(model_id, version))?,
            None => None,
        };
        let (bytes, source) = match shared {
            Some(document) => (document.bytes, state_key(model_id, version)),
            None => {
                let path = self.dir.join(model_id).join(format!("v{version}.json"));
                let bytes = std::fs::read(&path).map_err(|_| missing())?;
                (bytes, path.display().to_string())
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| AgentError::Unavailable(format!("model {source} is unreadable: {e}")))
    }

    /// Every model id with its versions, from both layers.
    pub fn list(&self) -> Result<Vec<(String, Vec<u32>)>, AgentError> {
        let mut ids: std::collections::BTreeMap<String, Vec<u32>> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| !id.starts_with('.'))
            .map(|id| {
                let v = self.disk_versions(&id);
                (id, v)
            })
            .collect();
        for (id, version) in self.state_versions(STATE_PREFIX)? {
            ids.entry(id).or_default().push(version);
        }
        Ok(ids
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(id, mut v)| {
                v.sort_unstable();
                v.dedup();
                (id, v)
            })
            .collect())
    }
}

/// `POST /client-health/train`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// One object per client: column name to value (numbers, text, booleans, null).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Record>,
    /// The column that says whether the client churned (yes/no, true/false, 1/0).
    pub target: String,
    /// Id to save the model under (a new version each time); default `custom`.
    #[serde(default)]
    pub model_id: Option<String>,
}

/// The trained model's summary.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrainResponse {
    pub model_id: String,
    pub version: u32,
    pub cv_auc: f64,
    pub metrics: TrainingMetrics,
    /// Input columns and how each is encoded.
    pub columns: Vec<ColumnSummary>,
    /// The largest coefficients (log-odds of churn per standardised unit or per level) of a
    /// logistic regression; empty for trees, whose contributions come per prediction.
    pub top_coefficients: Vec<Coefficient>,
    pub model_used: String,
    pub trained_at: String,
}

/// One input column of a model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ColumnSummary {
    pub name: String,
    /// numeric or categorical.
    pub kind: String,
}

/// One coefficient.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Coefficient {
    pub feature: String,
    pub coefficient: f64,
}

/// `POST /client-health/predict`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Which model (default: the `mlc-churn` model).
    #[serde(default)]
    pub model_id: Option<String>,
    /// Which version (default: the latest).
    #[serde(default)]
    pub version: Option<u32>,
    /// The client's values, by column name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub features: Option<Record>,
    /// Echoed.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The prototype's fields: used as features named `ticket_volume`, `resolution_time` and
    /// `satisfaction_score` when the model has such columns (listed as ignored otherwise).
    #[serde(default)]
    pub ticket_volume: Option<f64>,
    #[serde(default)]
    pub resolution_time: Option<f64>,
    #[serde(default)]
    pub satisfaction_score: Option<f64>,
    /// The client's monthly revenue: `revenue_at_risk` = churn_risk x this.
    #[serde(default)]
    pub monthly_revenue: Option<f64>,
}

/// One column's share of the prediction.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contribution {
    pub feature: String,
    /// The value used (null when imputed).
    #[schema(value_type = Object)]
    pub value: Value,
    /// Log-odds of churn this column adds against the baseline (the average training client
    /// for the regression, the trees' expected log-odds for the trees: TreeSHAP).
    pub contribution: f64,
}

/// Figures derived from the churn probability.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Outlook {
    pub retention_probability: f64,
    /// churn_risk x monthly_revenue, when the revenue was given.
    pub revenue_at_risk: Option<f64>,
}

/// The prediction.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PredictResponse {
    pub client_id: Option<String>,
    pub model_id: String,
    pub version: u32,
    pub churn_risk: f64,
    pub health_score: f64,
    pub risk_level: String,
    pub priority: u8,
    pub confidence: f64,
    /// The baseline log-odds (the average training client's for the regression, the trees'
    /// expected log-odds for the trees); plus the contributions gives the prediction's.
    pub baseline_log_odds: f64,
    pub contributions: Vec<Contribution>,
    /// Model columns the request left out (imputed with the training median or left unset).
    pub imputed_features: Vec<String>,
    /// Request fields the model has no column for.
    pub ignored_fields: Vec<String>,
    pub recommendations: Vec<String>,
    pub predictions: Outlook,
    /// The model's cross-validated ROC-AUC.
    pub model_cv_auc: f64,
    pub model_used: String,
    pub timestamp: String,
}

/// The client-health agent: trains and serves churn models from a [`ModelStore`].
pub struct ClientHealthAgent {
    store: ModelStore,
    /// Serialises training, held until the computation ends (not only its request): two
    /// requests never write the same version, and at most one training computes at a time.
    training: Arc<tokio::sync::Mutex<()>>,
    /// Trainings that stopped because their request was gone.
    stopped: Arc<AtomicU64>,
}

impl ClientHealthAgent {
    pub fn new(store: ModelStore) -> Self {
        Self {
            store,
            training: Arc::default(),
            stopped: Arc::default(),
        }
    }

    /// How many trainings stopped early because their request was gone.
    pub fn trainings_stopped(&self) -> u64 {
        self.stopped.load(Ordering::Relaxed)
    }

    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    /// Every saved model id with its versions (read off the request thread).
    pub async fn models(&self) -> Result<Vec<(String, Vec<u32>)>, AgentError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.list())
            .await
            .map_err(|e| AgentError::Unavailable(format!("listing the models stopped: {e}")))?
    }

    /// Trains and saves a model.
    pub async fn train(&self, request: TrainRequest) -> Result<TrainResponse, AgentError> {
        let model_id = request.model_id.clone().unwrap_or_else(|| "custom".into());
        validate_model_id("model_id", &model_id)?;
        if request.target.trim().is_empty() {
            return Err(AgentError::invalid("target", "name the target column"));
        }
        let guard = Arc::clone(&self.training).lock_owned().await;
        let (store, stopped) = (self.store.clone(), Arc::clone(&self.stopped));
        // Past the request's deadline this future is dropped: the fit stops at its next check,
        // and nothing is saved.
        crate::cancel::run_blocking("training", move |gone| {
            let _guard = guard;
            let trained = train_until(
                &model_id,
                &request.records,
                &request.target,
                "caller's records",
                gone,
            )
            .and_then(|model| match gone() {
                true => Err(training_stopped()),
                false => Ok(model),
            });
            let mut model = trained.inspect_err(|_| {
                if gone() {
                    stopped.fetch_add(1, Ordering::Relaxed);
                }
            })?;
            store.save(&mut model)?;
            Ok(train_summary(&model))
        })
        .await?
    }
}

/// The response describing a trained model.
pub fn train_summary(model: &ChurnModel) -> TrainResponse {
    let names = model.encoder.feature_names();
    let mut top: Vec<Coefficient> = names
        .into_iter()
        .zip(&model.coefficients)
        .map(|(feature, &coefficient)| Coefficient {
            feature,
            coefficient,
        })
        .collect();
    top.sort_by(|a, b| b.coefficient.abs().total_cmp(&a.coefficient.abs()));
    top.truncate(10);
    TrainResponse {
        model_id: model.model_id.clone(),
        version: model.version,
        cv_auc: model.metrics.cv_auc,
        metrics: model.metrics.clone(),
        columns: model
            .encoder
            .columns
            .iter()
            .map(|c| ColumnSummary {
                name: c.name.clone(),
                kind: match c.encoding {
                    ColumnEncoding::Numeric { .. } => "numeric".into(),
                    ColumnEncoding::Categorical { .. } => "categorical".into(),
                },
            })
            .collect(),
        top_coefficients: top,
        model_used: format!("{} ({})", model.versioned_id(), model.learner().describe()),
        trained_at: model.trained_at.clone(),
    }
}

impl crate::Answer for PredictResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }

    fn facts(&self) -> crate::Facts {
        crate::Facts {
            client_risk: Some(crate::ClientRiskFacts {
                risk_level: self.risk_level.clone(),
                client_id: self.client_id.clone(),
                churn_risk: self.churn_risk,
            }),
            ..Default::default()
        }
    }
}

impl crate::Answer for TrainResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for ClientHealthAgent {
    type Request = PredictRequest;
    type Response = PredictResponse;
    const KIND: AgentKind = AgentKind::ClientHealth;

    fn model_used(&self) -> String {
        format!("client-health/{DEFAULT_MODEL_ID} (L2 logistic regression)")
    }

    async fn handle(&self, request: PredictRequest) -> Result<PredictResponse, AgentError> {
        let model_id = request
            .model_id
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL_ID.into());
        let store = self.store.clone();
        let (id, version) = (model_id.clone(), request.version);
        let loaded = tokio::task::spawn_blocking(move || store.load(&id, version))
            .await
            .map_err(|e| AgentError::Unavailable(format!("loading the model stopped: {e}")))?;
        let model = match loaded {
            Err(AgentError::Invalid { .. }) if request.model_id.is_none() && request.version.is_none() => {
                return Err(AgentError::Unavailable(format!(
                    "the default model `{DEFAULT_MODEL_ID}` is not trained yet: run `msp-mesh prepare`"
                )))
            }
            other => other?,
        };
        predict(&model, &request)
    }
}

/// Scores one client with `model`.
pub fn predict(
    model: &ChurnModel,
    request: &PredictRequest,
) -> Result<PredictResponse, AgentError> {
    let mut record = request.features.clone().unwrap_or_default();
    for (name, value) in [
        ("ticket_volume", request.ticket_volume),
        ("resolution_time", request.resolution_time),
        ("satisfaction_score", request.satisfaction_score),
    ] {
        if let Some(v) = value {
            record
                .entry(name.to_string())
                .or_insert_with(|| serde_json::json!(v));
        }
    }
    if let Some(r) = request.monthly_revenue {
        if !r.is_finite() || r < 0.0 {
            return Err(AgentError::invalid(
                "monthly_revenue",
                "must be a non-negative number",
            ));
        }
    }
    if record.is_empty() {
        return Err(AgentError::invalid(
            "features",
            format!(
                "send the client's values by column; model {} reads {}",
                model.versioned_id(),
                column_list(model)
            ),
        ));
    }
    let known: std::collections::HashSet<&str> = model
        .encoder
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let ignored_fields: Vec<String> = record
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    let encoded = model.encoder.encode(&record);
    if encoded.missing.len() == model.encoder.columns.len() {
        return Err(AgentError::invalid(
            "features",
            format!(
                "none of the fields sent ({}) is a column of model {}, which reads {}",
                ignored_fields.join(", "),
                model.versioned_id(),
                column_list(model)
            ),
        ));
    }
    let (log_odds, baseline_log_odds, per_feature) = match &model.trees {
        Some(trees) => {
            // TreeSHAP: one value per feature, then the trees' expected log-odds.
            let mut values = trees.contributions(&encoded.features);
            let baseline = values.pop().unwrap_or(0.0);
            (baseline + values.iter().sum::<f64>(), baseline, values)
        }
        None => {
            let baseline = model.intercept
                + model
                    .feature_means
                    .iter()
                    .zip(&model.coefficients)
                    .map(|(m, w)| m * w)
                    .sum::<f64>();
            let per_feature: Vec<f64> = encoded
                .features
                .iter()
                .zip(model.coefficients.iter().zip(&model.feature_means))
                .map(|(x, (w, m))| w * (x - m))
                .collect();
            let log_odds = model.log_odds(std::slice::from_ref(&encoded.features))[0];
            (log_odds, baseline, per_feature)
        }
    };
    let churn_risk = sigmoid(log_odds);
    let mut per_column = vec![0.0; model.encoder.columns.len()];
    for (&col, value) in model.encoder.feature_columns().iter().zip(per_feature) {
        per_column[col] += value;
    }
    let mut contributions: Vec<Contribution> = model
        .encoder
        .columns
        .iter()
        .zip(per_column)
        .map(|(c, contribution)| Contribution {
            feature: c.name.clone(),
            value: record.get(&c.name).cloned().unwrap_or(Value::Null),
            contribution,
        })
        .collect();
    contributions.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    let (risk_level, priority) = match churn_risk {
        p if p >= 0.75 => ("Critical", 1),
        p if p >= 0.5 => ("High", 2),
        p if p >= 0.25 => ("Medium", 3),
        _ => ("Low", 4),
    };
    let recommendations = contributions
        .iter()
        .filter(|c| c.contribution > 0.1 && !c.value.is_null())
        .take(3)
        .map(|c| {
            format!(
                "{} = {} raises the churn odds {:.1}x against the average client: review it with the client",
                c.feature,
                c.value,
                c.contribution.exp()
            )
        })
        .collect();
    Ok(PredictResponse {
        client_id: request.client_id.clone(),
        model_id: model.model_id.clone(),
        version: model.version,
        churn_risk,
        health_score: 100.0 * (1.0 - churn_risk),
        risk_level: risk_level.into(),
        priority,
        confidence: churn_risk.max(1.0 - churn_risk),
        baseline_log_odds,
        contributions,
        imputed_features: encoded.missing,
        ignored_fields,
        recommendations,
        predictions: Outlook {
            retention_probability: 1.0 - churn_risk,
            revenue_at_risk: request.monthly_revenue.map(|r| r * churn_risk),
        },
        model_cv_auc: model.metrics.cv_auc,
        model_used: format!("{} ({})", model.versioned_id(), model.learner().describe()),
        timestamp: now_iso8601(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Churn determined by one feature with a known direction: many support calls churn.
    fn records() -> Vec<Record> {
        (0..200)
            .map(|i| {
                let calls = i % 10;
                let plan = if i % 3 == 0 { "pro" } else { "basic" };
                let churned = calls >= 7 || (calls >= 5 && plan == "basic" && i % 2 == 0);
                json!({"calls": calls, "plan": plan, "churn": if churned {"yes"} else {"no"}})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    /// A training whose request future is dropped (its deadline passed) stops computing and
    /// saves nothing, and the next training does not wait for the abandoned one to finish.
    #[tokio::test]
    async fn a_training_whose_request_is_gone_stops_and_saves_nothing() {
        // 3,000 records of 40 columns x 8 levels: 321 features, minutes of Newton steps in a
        // debug build.
        let wide: Vec<Record> = (0..3_000)
            .map(|i: usize| {
                let mut r: Record = (0..40)
                    .map(|c| {
                        (
                            format!("c{c}"),
                            json!(format!("l{}", (i * (c + 7) / 3) % 8)),
                        )
                    })
                    .collect();
                r.insert(
                    "churn".into(),
                    json!(if (i * 7919) % 5 < 2 { "yes" } else { "no" }),
                );
                r
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let agent = Arc::new(ClientHealthAgent::new(ModelStore::new(dir.path())));
        let request = |records: Vec<Record>, id: &str| TrainRequest {
            records,
            target: "churn".into(),
            model_id: Some(id.into()),
        };
        let cut_off = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            agent.train(request(wide, "wide")),
        )
        .await;
        assert!(cut_off.is_err(), "the training outlived its deadline");
        let started = std::time::Instant::now();
        let next = agent.train(request(records(), "small")).await.unwrap();
        assert_eq!(next.model_id, "small");
        assert_eq!(agent.trainings_stopped(), 1);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the abandoned training held the lock for {:?}",
            started.elapsed()
        );
        let saved: Vec<String> = agent
            .models()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert!(!saved.contains(&"wide".to_string()), "{saved:?}");
    }

    /// Churn when logins are in a middle band (neither the new nor the settled clients: a
    /// rule no linear model can draw): cross-validation picks the trees, which separate it;
    /// the choice and both scores are reported; the saved model predicts the same after
    /// loading; and each prediction's baseline plus its per-column TreeSHAP contributions is
    /// its log-odds.
    #[test]
    fn the_learner_that_cross_validates_better_is_kept_with_exact_contributions() {
        let records: Vec<Record> = (0..400)
            .map(|i: usize| {
                let (a, b) = (i % 10, (i * 7 + i / 10) % 10);
                let churned = (3..=6).contains(&a);
                json!({"logins": a, "tickets": b, "plan": if i.is_multiple_of(3) {"pro"} else {"basic"},
                    "churn": churned})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        let mut model = train("xor", &records, "churn", "test").unwrap();
        let m = &model.metrics;
        assert_eq!(m.learner, Learner::GradientBoostedTrees, "{m:?}");
        let (logistic, trees) = (
            m.cv_auc_by_learner["logistic_regression"],
            m.cv_auc_by_learner["gradient_boosted_trees"],
        );
        assert!(trees > 0.95 && logistic < 0.7, "{logistic} {trees}");
        assert_eq!(m.cv_auc, trees);
        let summary = train_summary(&model);
        assert!(
            summary.model_used.ends_with("(gradient-boosted trees)"),
            "{}",
            summary.model_used
        );

        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        store.save(&mut model).unwrap();
        let loaded = store.load("xor", None).unwrap();
        for (features, churns) in [
            (json!({"logins": 5, "tickets": 1, "plan": "basic"}), true),
            (json!({"logins": 9, "tickets": 9, "plan": "pro"}), false),
            (json!({"logins": 1, "tickets": 4, "plan": "basic"}), false),
        ] {
            let request = PredictRequest {
                features: features.as_object().cloned(),
                ..Default::default()
            };
            let answer = predict(&loaded, &request).unwrap();
            assert_eq!(
                answer.churn_risk,
                predict(&model, &request).unwrap().churn_risk
            );
            assert_eq!(
                answer.churn_risk > 0.5,
                churns,
                "{features}: {}",
                answer.churn_risk
            );
            let total = answer.baseline_log_odds
                + answer
                    .contributions
                    .iter()
                    .map(|c| c.contribution)
                    .sum::<f64>();
            let logit = (answer.churn_risk / (1.0 - answer.churn_risk)).ln();
            assert!((total - logit).abs() < 1e-6, "{total} vs {logit}");
            let plan = answer
                .contributions
                .iter()
                .find(|c| c.feature == "plan")
                .unwrap();
            assert!(
                plan.contribution.abs() < 0.5,
                "the plan plays no part: {plan:?}"
            );
        }
    }

    /// A rule a linear model draws as well as trees keeps the regression (ties and near-ties
    /// go to the simpler model only when it scores at least as well).
    #[test]
    fn a_linear_rule_is_scored_for_both_learners() {
        let model = train("toy", &records(), "churn", "test").unwrap();
        let m = &model.metrics;
        assert_eq!(m.cv_auc_by_learner.len(), 2, "{m:?}");
        let best = m
            .cv_auc_by_learner
            .values()
            .copied()
            .fold(f64::MIN, f64::max);
        assert_eq!(m.cv_auc, best);
        assert_eq!(model.learner(), m.learner);
    }

    /// Two instances (each with its own shipped folder) on one user state: versions follow
    /// the shipped ones and each other, and each serves what the other saved.
    #[test]
    fn shared_models_are_served_by_every_instance() {
        let state: Arc<dyn UserState> = Arc::new(crate::user_state::MemoryState::new());
        let shipped = tempfile::tempdir().unwrap();
        let mut model = train("toy", &records(), "churn", "test").unwrap();
        assert_eq!(ModelStore::new(shipped.path()).save(&mut model).unwrap(), 1);
        let one = ModelStore::shared(shipped.path(), state.clone());
        let other = ModelStore::shared(tempfile::tempdir().unwrap().path(), state);
        assert_eq!(
            one.save(&mut model.clone()).unwrap(),
            2,
            "after the shipped v1"
        );
        assert_eq!(
            other.save(&mut model.clone()).unwrap(),
            3,
            "after the shared v2"
        );
        assert_eq!(one.save(&mut model.clone()).unwrap(), 4);
        assert_eq!(other.load("toy", Some(2)).unwrap().version, 2);
        assert_eq!(other.load("toy", None).unwrap().version, 4);
        assert_eq!(one.load("toy", Some(3)).unwrap().version, 3);
        assert_eq!(
            one.list().unwrap(),
            vec![("toy".to_string(), vec![1, 2, 3, 4])]
        );
        assert_eq!(
            other.list().unwrap(),
            vec![("toy".to_string(), vec![2, 3, 4])]
        );
    }

    #[test]
    fn trains_saves_versions_and_explains_a_prediction() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path());
        let mut model = train("toy", &records(), "churn", "test").unwrap();
        assert!(model.metrics.cv_auc > 0.9, "{:?}", model.metrics);
        assert_eq!(store.save(&mut model).unwrap(), 1);
        assert_eq!(store.save(&mut model.clone()).unwrap(), 2);
        let loaded = store.load("toy", None).unwrap();
        assert_eq!(loaded.version, 2);
        assert_eq!(store.list().unwrap(), vec![("toy".to_string(), vec![1, 2])]);

        let high = predict(
            &loaded,
            &PredictRequest {
                features: json!({"calls": 9, "plan": "basic"}).as_object().cloned(),
                ticket_volume: Some(3.0),
                ..Default::default()
            },
        )
        .unwrap();
        let low = predict(
            &loaded,
            &PredictRequest {
                features: json!({"calls": 0, "plan": "pro"}).as_object().cloned(),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            high.churn_risk > 0.8 && low.churn_risk < 0.1,
            "{} {}",
            high.churn_risk,
            low.churn_risk
        );
        assert_eq!(high.contributions[0].feature, "calls");
        assert_eq!(high.ignored_fields, vec!["ticket_volume"]);
        // Baseline plus contributions is the prediction's log-odds.
        let sum: f64 = high.baseline_log_odds
            + high
                .contributions
                .iter()
                .map(|c| c.contribution)
                .sum::<f64>();
        assert!((1.0 / (1.0 + (-sum).exp()) - high.churn_risk).abs() < 1e-9);
    }

    #[test]
    fn bad_training_input_names_the_field() {
        let mut rows = records();
        rows[3].insert("churn".into(), json!("perhaps"));
        match train("toy", &rows, "churn", "t") {
            Err(AgentError::Invalid { field, .. }) => assert_eq!(field, "records[3].churn"),
            other => panic!("{other:?}"),
        }
        let one_class: Vec<Record> = records()
            .into_iter()
            .map(|mut r| {
                r.insert("churn".into(), json!("no"));
                r
            })
            .collect();
        assert!(matches!(
            train("toy", &one_class, "churn", "t"),
            Err(AgentError::Invalid { .. })
        ));
        assert!(matches!(
            train("Bad Id", &records(), "churn", "t"),
            Err(AgentError::Invalid { .. })
        ));
    }
}
