//! `POST /federated/train`, `GET /federated/status`: real rounds of federated averaging with
//! differential privacy over simulated MSPs.
//!
//! The data are modeldata's `mlc_churn` customers (the same real churn set as the default
//! client-health model), split 80/20 (stratified, seeded) into training and held-out test
//! records; the training records are dealt across `participating_msps` simulated MSPs. The
//! shared model is a logistic regression on the [`mesh_numeric::tabular`] encoding (fitted on
//! the training split). Each round, every MSP runs DP-SGD locally ([`fedavg`]: per-example
//! clipping, Gaussian noise) and the server averages the deltas, optionally through pairwise
//! masking ([`secure_agg`]). The noise is calibrated so the privacy actually spent, from the
//! Rényi-DP accountant ([`dp`], checked against Google's `dp-accounting`), stays within the
//! caller's `privacy_epsilon` for `delta`. `previous_accuracy` is the untrained model's
//! accuracy on the held-out records, `new_accuracy` the trained one's; centralised baselines
//! (all training records in one place, with and without DP) come with every run.
//!
//! [`secure_agg`]: mesh_numeric::federated::secure_agg
//! [`dp`]: mesh_numeric::federated::dp
//!
//! Runs are independent trainings on the same records, so their budgets add up:
//! `/federated/status` reports the total by basic composition (an upper bound). The runs and
//! that total live in the shared [`UserState`] (an atomic ledger), so every instance adds to
//! one privacy total and a restart resets nothing.

use std::sync::Arc;

use mesh_numeric::federated::fedavg::{self, Dataset, FederatedConfig, Partition, Privacy};
use mesh_numeric::tabular::{binary_target, stratified_folds, Encoder, Record};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::user_state::{create, UserState};
use crate::{now_iso8601, Agent, AgentError, AgentKind};

/// Ledger of the runs started (its total numbers them).
const RUNS_LEDGER: &str = "federated/runs";
/// Ledger of the privacy budget spent by every run together.
const EPSILON_LEDGER: &str = "federated/epsilon";

fn run_key(run_id: usize) -> String {
    format!("federated/run/{run_id:08}")
}

/// The model every run trains.
pub const MODEL_TYPE: &str = "churn-logistic-regression";
/// Most simulated MSPs.
pub const MAX_MSPS: usize = 50;
/// Most rounds of one run.
pub const MAX_ROUNDS: usize = 100;

/// [`FederatedResponse::privacy_caveat`] of a run with a caller-given seed.
const SEEDED_CAVEAT: &str = "a caller-given `seed` makes the DP noise and the aggregation masks reproducible: whoever knows it can remove them, so the (epsilon, delta) guarantee and the masks' secrecy do not hold; leave `seed` out for a private run";

fn guarantee_holds() -> bool {
    true
}

/// A training run.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FederatedRequest {
    /// The model to train; only `churn-logistic-regression` (the default) is offered.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Number of simulated MSPs holding a share of the data (default 5, 2..=50).
    #[serde(default)]
    pub participating_msps: Option<usize>,
    /// Privacy budget epsilon for the whole run (default 1.0; must be > 0).
    #[serde(default)]
    pub privacy_epsilon: Option<f64>,
    /// delta of (epsilon, delta)-DP (default 1e-5).
    #[serde(default)]
    pub delta: Option<f64>,
    /// Federated rounds (default 10).
    #[serde(default)]
    pub rounds: Option<usize>,
    /// Local DP-SGD steps per MSP per round (default 5).
    #[serde(default)]
    pub local_steps: Option<usize>,
    /// Mask each update pairwise so the server only sees the sum (default true).
    #[serde(default)]
    pub secure_aggregation: Option<bool>,
    /// `iid` (default) or `label_skew` (each MSP sees mostly one outcome).
    #[serde(default)]
    pub partition: Option<String>,
    /// Seed of the partition, the sampling, the noise and the masks, for reproducible
    /// experiments: with it the privacy guarantee does not hold (whoever knows the seed can
    /// regenerate the noise and the masks), and the response says so. Default: drawn from the
    /// operating system's randomness.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Accuracy after one round.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoundSummary {
    pub round: usize,
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub epsilon_spent: Option<f64>,
}

impl From<&fedavg::RoundMetrics> for RoundSummary {
    fn from(r: &fedavg::RoundMetrics) -> Self {
        Self {
            round: r.round,
            accuracy: r.accuracy,
            auc: r.auc,
            epsilon_spent: r.epsilon_spent,
        }
    }
}

/// A centralised baseline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Baseline {
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub epsilon: Option<f64>,
    pub noise_multiplier: f64,
}

/// The run's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FederatedResponse {
    pub run_id: usize,
    pub model_type: String,
    pub participating_msps: usize,
    /// The budget asked for.
    pub privacy_epsilon: f64,
    /// The epsilon actually spent (RDP accountant), at `delta`.
    pub privacy_budget_used: f64,
    pub delta: f64,
    pub noise_multiplier: f64,
    /// Record-level DP (one customer record added or removed).
    pub accounting_unit: String,
    /// Held-out accuracy of the untrained global model (all weights 0, so it predicts churn
    /// for everyone: the churn rate).
    pub previous_accuracy: f64,
    /// Held-out accuracy after the last round.
    pub new_accuracy: f64,
    pub accuracy_improvement: f64,
    pub new_auc: Option<f64>,
    /// Accuracy of always predicting the commoner outcome on the held-out records: with
    /// 14% churners, accuracy near this says little, the AUC tells the models apart.
    pub majority_class_accuracy: f64,
    /// Rounds run.
    pub round_number: usize,
    pub history: Vec<RoundSummary>,
    pub records_per_msp: Vec<usize>,
    pub test_records: usize,
    pub secure_aggregation: bool,
    /// Whether the (epsilon, delta) guarantee and the masks' secrecy hold: false when the
    /// caller gave `seed`.
    #[serde(default = "guarantee_holds")]
    pub privacy_guarantee_holds: bool,
    /// Why the guarantee does not hold, when it does not.
    #[serde(default)]
    pub privacy_caveat: Option<String>,
    pub centralised_non_private: Option<Baseline>,
    pub centralised_dp: Option<Baseline>,
    pub data_source: String,
    pub model_used: String,
    pub timestamp: String,
}

/// Every run so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FederatedStatus {
    pub runs: usize,
    /// Sum of the runs' epsilons: an upper bound on what they spent together on these records.
    pub total_epsilon_spent: f64,
    pub latest: Option<FederatedResponse>,
    pub data_source: String,
    pub training_records: usize,
    pub test_records: usize,
}

/// The federated-learning agent: the encoded churn records and the runs so far.
pub struct FederatedAgent {
    train: Dataset,
    test: Dataset,
    data_source: String,
    state: Arc<dyn UserState>,
}

impl FederatedAgent {
    /// Encodes `records` (with a yes/no `target`) and splits them 80/20 (stratified, seeded);
    /// runs and the privacy ledger go to `state`.
    pub fn new(
        records: &[Record],
        target: &str,
        data_source: &str,
        state: Arc<dyn UserState>,
    ) -> Result<Self, AgentError> {
        let labels: Vec<bool> = records
            .iter()
            .map(|r| r.get(target).and_then(binary_target))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                AgentError::Unavailable(format!("{data_source}: bad `{target}` values"))
            })?;
        let folds = stratified_folds(&labels, 5, 42);
        let (train_idx, test_idx): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| folds[i] != 0);
        let train_rows: Vec<&Record> = train_idx.iter().map(|&i| &records[i]).collect();
        let encoder = Encoder::fit(&train_rows, &[target]);
        let encode = |idx: &[usize]| Dataset {
            x: idx
                .iter()
                .map(|&i| encoder.encode(&records[i]).features)
                .collect(),
            y: idx.iter().map(|&i| u8::from(labels[i])).collect(),
        };
        Ok(Self {
            train: encode(&train_idx),
            test: encode(&test_idx),
            data_source: data_source.to_string(),
            state,
        })
    }

    /// Every run so far, by every instance (read off the request thread).
    pub async fn status(&self) -> Result<FederatedStatus, AgentError> {
        let state = self.state.clone();
        let (runs, total, latest) = tokio::task::spawn_blocking(move || {
            let runs = state.total(RUNS_LEDGER)? as usize;
            let total = state.total(EPSILON_LEDGER)?;
            let latest = match runs {
                0 => None,
                n => state.get(&run_key(n))?,
            };
            Ok::<_, AgentError>((runs, total, latest))
        })
        .await
        .map_err(|e| AgentError::Unavailable(format!("reading the runs stopped: {e}")))??;
        Ok(FederatedStatus {
            runs,
            total_epsilon_spent: total,
            latest: latest.and_then(|d| serde_json::from_slice(&d.bytes).ok()),
            data_source: self.data_source.clone(),
            training_records: self.train.y.len(),
            test_records: self.test.y.len(),
        })
    }
}

fn config(request: &FederatedRequest) -> Result<(FederatedConfig, f64), AgentError> {
    if let Some(m) = &request.model_type {
        if m != MODEL_TYPE {
            return Err(AgentError::invalid(
                "model_type",
                format!("only `{MODEL_TYPE}` is offered"),
            ));
        }
    }
    let clients = request.participating_msps.unwrap_or(5);
    if !(2..=MAX_MSPS).contains(&clients) {
        return Err(AgentError::invalid(
            "participating_msps",
            format!("must be between 2 and {MAX_MSPS}"),
        ));
    }
    let epsilon = request.privacy_epsilon.unwrap_or(1.0);
    if !(epsilon.is_finite() && epsilon > 0.0 && epsilon <= 100.0) {
        return Err(AgentError::invalid(
            "privacy_epsilon",
            "must be a number in (0, 100]",
        ));
    }
    let delta = request.delta.unwrap_or(1e-5);
    if !(delta > 0.0 && delta < 0.01) {
        return Err(AgentError::invalid("delta", "must be in (0, 0.01)"));
    }
    let rounds = request.rounds.unwrap_or(10);
    if !(1..=MAX_ROUNDS).contains(&rounds) {
        return Err(AgentError::invalid(
            "rounds",
            format!("must be between 1 and {MAX_ROUNDS}"),
        ));
    }
    let local_steps = request.local_steps.unwrap_or(5);
    if !(1..=50).contains(&local_steps) {
        return Err(AgentError::invalid(
            "local_steps",
            "must be between 1 and 50",
        ));
    }
    let partition = match request.partition.as_deref().unwrap_or("iid") {
        "iid" => Partition::Iid,
        "label_skew" => Partition::LabelSkew(0.8),
        _ => {
            return Err(AgentError::invalid(
                "partition",
                "must be `iid` or `label_skew`",
            ))
        }
    };
    Ok((
        FederatedConfig {
            clients,
            rounds,
            local_steps,
            sampling_rate: 0.2,
            learning_rate: 0.5,
            clip_norm: 1.0,
            privacy: Privacy::TargetEpsilon(epsilon),
            delta,
            partition,
            secure_aggregation: request.secure_aggregation.unwrap_or(true),
            baselines: true,
            seed: match request.seed {
                Some(seed) => seed,
                None => fedavg::os_seed().map_err(AgentError::Unavailable)?,
            },
        },
        epsilon,
    ))
}

impl crate::Answer for FederatedResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }

    /// Each participant's record count, and the mesh-wide AUC, accuracy and privacy spent.
    fn facts(&self) -> crate::Facts {
        let fact = |msp_id: String, metric_type, value| crate::NetworkFact {
            msp_id,
            metric_type,
            value,
        };
        let mut network: Vec<crate::NetworkFact> = self
            .records_per_msp
            .iter()
            .enumerate()
            .map(|(i, n)| fact(format!("msp-{}", i + 1), "federated_records", *n as f64))
            .collect();
        let mesh = [
            ("federated_model_auc", self.new_auc),
            ("federated_model_accuracy", Some(self.new_accuracy)),
            ("privacy_epsilon_spent", Some(self.privacy_budget_used)),
        ];
        for (metric_type, value) in mesh {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                network.push(fact("mesh".into(), metric_type, v));
            }
        }
        crate::Facts {
            network,
            ..Default::default()
        }
    }
}

impl Agent for FederatedAgent {
    type Request = FederatedRequest;
    type Response = FederatedResponse;
    const KIND: AgentKind = AgentKind::FederatedLearning;

    fn model_used(&self) -> String {
        format!("fedavg-dp-sgd/{MODEL_TYPE}@1 (RDP accountant)")
    }

    async fn handle(&self, request: FederatedRequest) -> Result<FederatedResponse, AgentError> {
        self.handle_observed(request, |_| {}).await
    }
}

impl FederatedAgent {
    /// Checks a request as [`Agent::handle`] would, without running it: the 422 a streamed
    /// run must answer before its first round.
    pub fn check(request: &FederatedRequest) -> Result<(), AgentError> {
        config(request).map(drop)
    }

    /// [`Agent::handle`], with `on_round` called as each round ends (round 0 is the untrained
    /// model), from the training thread, with what the answer's `history` will hold.
    pub async fn handle_observed(
        &self,
        request: FederatedRequest,
        mut on_round: impl FnMut(RoundSummary) + Send + 'static,
    ) -> Result<FederatedResponse, AgentError> {
        let (config, epsilon) = config(&request)?;
        let seeded = request.seed.is_some();
        let (train, test) = (self.train.clone(), self.test.clone());
        // Past the request's deadline this future is dropped, and the rounds stop.
        let report = crate::cancel::run_blocking("training", move |stopped| {
            let mut observe = |r: &fedavg::RoundMetrics| on_round(RoundSummary::from(r));
            fedavg::run_until(&train, &test, &config, stopped, &mut observe).map(|r| (r, config))
        })
        .await?
        .map_err(|e| match e {
            fedavg::FederatedError::Dp(e) => AgentError::invalid("privacy_epsilon", e.to_string()),
            fedavg::FederatedError::InvalidData(e) => AgentError::invalid(
                "participating_msps",
                format!("{e} (too many MSPs for the data?)"),
            ),
            other => AgentError::Unavailable(format!("federated training failed: {other}")),
        })?;
        let (report, config) = report;
        let first = report.history.first().map_or(f64::NAN, |r| r.accuracy);
        let last = report.history.last().map_or(f64::NAN, |r| r.accuracy);
        let baseline = |b: &fedavg::BaselineReport| Baseline {
            accuracy: b.accuracy,
            auc: b.auc,
            epsilon: b.epsilon,
            noise_multiplier: b.noise_multiplier,
        };
        let state = self.state.clone();
        let run_id = tokio::task::spawn_blocking(move || state.add(RUNS_LEDGER, 1.0))
            .await
            .map_err(|e| AgentError::Unavailable(format!("numbering the run stopped: {e}")))??
            as usize;
        let response = FederatedResponse {
            run_id,
            model_type: MODEL_TYPE.into(),
            participating_msps: config.clients,
            privacy_epsilon: epsilon,
            privacy_budget_used: report.epsilon.unwrap_or(f64::INFINITY),
            delta: report.delta,
            noise_multiplier: report.noise_multiplier,
            accounting_unit: report.accounting_unit.clone(),
            previous_accuracy: first,
            new_accuracy: last,
            accuracy_improvement: last - first,
            new_auc: report.history.last().and_then(|r| r.auc),
            majority_class_accuracy: {
                let churned = self.test.y.iter().filter(|&&y| y == 1).count() as f64;
                let n = self.test.y.len() as f64;
                churned.max(n - churned) / n
            },
            round_number: config.rounds,
            history: report.history.iter().map(RoundSummary::from).collect(),
            records_per_msp: report.client_sizes.clone(),
            test_records: self.test.y.len(),
            secure_aggregation: config.secure_aggregation,
            privacy_guarantee_holds: !seeded,
            privacy_caveat: seeded.then(|| SEEDED_CAVEAT.to_string()),
            centralised_non_private: report.centralised_non_private.as_ref().map(baseline),
            centralised_dp: report.centralised_dp.as_ref().map(baseline),
            data_source: self.data_source.clone(),
            model_used: self.model_used(),
            timestamp: now_iso8601(),
        };
        let state = self.state.clone();
        let stored = response.clone();
        tokio::task::spawn_blocking(move || {
            // The spent budget first: a run whose record is lost must still count.
            if stored.privacy_budget_used.is_finite() {
                state.add(EPSILON_LEDGER, stored.privacy_budget_used)?;
            }
            let bytes = serde_json::to_vec(&stored).expect("a run serialises");
            create(state.as_ref(), &run_key(stored.run_id), &bytes)?;
            Ok::<_, AgentError>(())
        })
        .await
        .map_err(|e| AgentError::Unavailable(format!("recording the run stopped: {e}")))??;
        Ok(response)
    }
}
