//! Federated averaging (FedAvg, McMahan et al. 2017) with client-side DP-SGD
//! (Abadi et al. 2016) for binary logistic regression on dense features.
//!
//! Round r: every client copies the global model, runs `local_steps` DP-SGD
//! steps on its own records (Poisson sampling with rate q; per-example
//! gradients clipped to `clip_norm` in L2 over weights+bias; summed; Gaussian
//! noise N(0, sigma^2 clip^2) per coordinate; divided by the expected batch
//! size q*n_k), and sends its model delta; the server adds the size-weighted
//! average delta (n_k/N) to the global model. With `secure_aggregation`, each
//! client pre-weights its delta and sends it through [`super::secure_agg`];
//! the server only sees the masked vectors and their sum.
//!
//! **Accounting unit**: record-level DP, add/remove one training record.
//! Each record lives on exactly one client, and that client's released deltas
//! are an adaptive composition of `rounds * local_steps` Poisson-subsampled
//! Gaussian steps with (q, sigma); other clients only post-process the
//! transcript. So the whole transcript (and the final model) is
//! (eps, delta)-DP per record, with eps from [`super::dp::epsilon`]. This is
//! NOT client-level (user-level) DP. Client sizes n_k (used for weighting and
//! as the batch denominator) are treated as public, as dataset size is in
//! standard DP-SGD. Secure aggregation adds no DP on top (every client adds its
//! full noise itself); it hides individual deltas from the server.
//!
//! All randomness (partition, sampling, noise, masks) is derived from `seed`.

// `!(x > 0.0)` is deliberate here: it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::dp::{self, DpError};
use super::secure_agg::{self, SecAggError};
use crate::stats::sigmoid;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use thiserror::Error;

/// Dense binary-classification data. Features must already be numeric
/// (and ideally standardised); labels are 0/1.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub x: Vec<Vec<f64>>,
    pub y: Vec<u8>,
}

/// How the noise level is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Privacy {
    /// No noise (eps = infinity). Clipping still applies if `clip_norm` is finite.
    NonPrivate,
    /// Fixed noise multiplier sigma (> 0).
    NoiseMultiplier(f64),
    /// Smallest sigma with eps <= target after all rounds ([`dp::calibrate_noise`]).
    TargetEpsilon(f64),
}

/// How training records are split across clients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Partition {
    /// Stratified: each class is shuffled and dealt round-robin over all
    /// clients, so every client has (nearly) the global label ratio.
    Iid,
    /// Label skew s in [0,1]: a fraction s of each class c (after shuffling)
    /// is dealt only to the "home" clients of c (client k with k % 2 == c),
    /// the rest round-robin over all clients. s = 0 is `Iid`; s = 1 gives
    /// even clients only label 0 and odd clients only label 1.
    LabelSkew(f64),
}

/// Training configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FederatedConfig {
    /// Number of simulated clients (>= 1).
    pub clients: usize,
    /// Federated rounds (>= 1).
    pub rounds: usize,
    /// Local DP-SGD steps per client per round (1/q steps ~ one local epoch).
    pub local_steps: usize,
    /// Poisson sampling rate q in (0, 1]; expected batch is q * n_k.
    pub sampling_rate: f64,
    pub learning_rate: f64,
    /// L2 clip norm of per-example gradients (> 0; may be +inf only for `NonPrivate`).
    pub clip_norm: f64,
    pub privacy: Privacy,
    /// Target delta (in (0,1)) for the reported eps.
    pub delta: f64,
    pub partition: Partition,
    pub secure_aggregation: bool,
    /// Also train the centralised baselines (non-private and DP at the same eps).
    pub baselines: bool,
    pub seed: u64,
}

impl Default for FederatedConfig {
    fn default() -> Self {
        Self {
            clients: 5,
            rounds: 10,
            local_steps: 10,
            sampling_rate: 0.1,
            learning_rate: 0.5,
            clip_norm: 1.0,
            privacy: Privacy::TargetEpsilon(1.0),
            delta: 1e-5,
            partition: Partition::Iid,
            secure_aggregation: true,
            baselines: true,
            seed: 0,
        }
    }
}

/// Metrics of the global model on the test set after `round` rounds (0 = initial model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundMetrics {
    pub round: usize,
    pub accuracy: f64,
    /// ROC-AUC; `None` if the test set has only one class.
    pub auc: Option<f64>,
    /// eps spent so far per record; `None` = not private (infinite).
    pub epsilon_spent: Option<f64>,
}

/// Result of a centralised baseline (all training data on one machine).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineReport {
    pub steps: usize,
    pub noise_multiplier: f64,
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub epsilon: Option<f64>,
}

/// Full report of a federated run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FederatedReport {
    pub accounting_unit: String,
    /// sigma actually used (0 for non-private).
    pub noise_multiplier: f64,
    pub delta: f64,
    /// DP-SGD steps each client's data went through (rounds * local_steps).
    pub steps_per_client: usize,
    /// Final eps per record; `None` = not private.
    pub epsilon: Option<f64>,
    /// RDP order attaining `epsilon`.
    pub rdp_order: Option<f64>,
    pub client_sizes: Vec<usize>,
    pub client_positive_fraction: Vec<f64>,
    pub history: Vec<RoundMetrics>,
    pub weights: Vec<f64>,
    pub bias: f64,
    pub centralised_non_private: Option<BaselineReport>,
    /// Centralised DP-SGD with the same q, sigma, steps, hence the same eps.
    pub centralised_dp: Option<BaselineReport>,
}

/// Errors from [`run`].
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FederatedError {
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid data: {0}")]
    InvalidData(String),
    #[error(transparent)]
    Dp(#[from] DpError),
    #[error(transparent)]
    SecAgg(#[from] SecAggError),
    /// The caller stopped the run (its request is gone) after `rounds` rounds.
    #[error("stopped by the caller after {rounds} rounds")]
    Stopped { rounds: usize },
}

// ---- randomness ----------------------------------------------------------

pub(crate) const TAG_PARTITION: u64 = 1;
pub(crate) const TAG_CLIENT: u64 = 2;
pub(crate) const TAG_SECAGG: u64 = 3;
pub(crate) const TAG_CENTRAL_PLAIN: u64 = 4;
pub(crate) const TAG_CENTRAL_DP: u64 = 5;

/// A seed from the operating system's randomness, for a run whose noise and masks nobody can
/// regenerate (a known seed voids the privacy guarantee).
pub fn os_seed() -> Result<u64, String> {
    use rand_core::TryRngCore;
    rand_core::OsRng
        .try_next_u64()
        .map_err(|e| format!("the operating system's randomness: {e}"))
}

/// Independent ChaCha20 stream for (seed, purpose, a, b).
pub(crate) fn rng_for(seed: u64, tag: u64, a: u64, b: u64) -> ChaCha20Rng {
    let mut s = [0u8; 32];
    s[0..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&tag.to_le_bytes());
    s[16..24].copy_from_slice(&a.to_le_bytes());
    s[24..32].copy_from_slice(&b.to_le_bytes());
    ChaCha20Rng::from_seed(s)
}

/// Uniform in [0, 1).
fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal (Box-Muller, one draw per call).
fn gaussian(rng: &mut ChaCha20Rng) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1]
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn shuffle<T>(v: &mut [T], rng: &mut ChaCha20Rng) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize; // bias < 2^-50, irrelevant here
        v.swap(i, j);
    }
}

/// Poisson sampling: each index independently with probability q.
pub(crate) fn poisson_sample(rng: &mut ChaCha20Rng, idx: &[usize], q: f64) -> Vec<usize> {
    idx.iter().copied().filter(|_| uniform(rng) < q).collect()
}

// ---- model ---------------------------------------------------------------

/// Model parameters: `p[..d]` weights, `p[d]` bias.
fn logit(p: &[f64], x: &[f64]) -> f64 {
    let d = x.len();
    let mut z = p[d];
    for j in 0..d {
        z += p[j] * x[j];
    }
    z
}

/// Hyper-parameters of one DP-SGD run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SgdParams {
    pub q: f64,
    pub lr: f64,
    pub clip: f64,
    pub sigma: f64,
    pub steps: usize,
}

/// `steps` DP-SGD steps on the records `idx` (in this order), in place.
/// `xnorm[i] = sqrt(|x_i|^2 + 1)` (norm of the augmented feature vector).
pub(crate) fn local_sgd(
    p: &mut [f64],
    data: &Dataset,
    xnorm: &[f64],
    idx: &[usize],
    h: SgdParams,
    rng: &mut ChaCha20Rng,
) {
    let d = p.len() - 1;
    let denom = h.q * idx.len() as f64;
    let mut g = vec![0.0; d + 1];
    for _ in 0..h.steps {
        let batch = poisson_sample(rng, idx, h.q);
        g.iter_mut().for_each(|v| *v = 0.0);
        for &i in &batch {
            let x = &data.x[i];
            let r = sigmoid(logit(p, x)) - data.y[i] as f64;
            let norm = r.abs() * xnorm[i];
            let f = if norm > h.clip { h.clip / norm } else { 1.0 };
            let c = f * r;
            for j in 0..d {
                g[j] += c * x[j];
            }
            g[d] += c;
        }
        if h.sigma > 0.0 {
            for v in g.iter_mut() {
                *v += h.sigma * h.clip * gaussian(rng);
            }
        }
        for j in 0..=d {
            p[j] -= h.lr * (g[j] / denom);
        }
    }
}

// ---- metrics -------------------------------------------------------------

/// (accuracy at p >= 0.5, ROC-AUC with tie-averaged ranks).
pub fn evaluate(weights: &[f64], bias: f64, data: &Dataset) -> (f64, Option<f64>) {
    let mut p = weights.to_vec();
    p.push(bias);
    let scores: Vec<f64> = data.x.iter().map(|x| logit(&p, x)).collect();
    let correct = scores
        .iter()
        .zip(&data.y)
        .filter(|(s, y)| (**s >= 0.0) == (**y == 1))
        .count();
    let acc = correct as f64 / data.y.len().max(1) as f64;
    (acc, roc_auc(&scores, &data.y))
}

/// Mann-Whitney ROC-AUC ([`crate::tabular::roc_auc`]) of 0/1 labels; `None` unless both
/// classes are present.
pub fn roc_auc(scores: &[f64], y: &[u8]) -> Option<f64> {
    if scores.len() != y.len() {
        return None;
    }
    let labels: Vec<bool> = y.iter().map(|&v| v == 1).collect();
    Some(crate::tabular::roc_auc(scores, &labels)).filter(|auc| !auc.is_nan())
}

// ---- partition -----------------------------------------------------------

/// Deterministic partition of record indices over clients (see [`Partition`]).
pub(crate) fn partition(
    y: &[u8],
    clients: usize,
    how: Partition,
    seed: u64,
) -> Result<Vec<Vec<usize>>, FederatedError> {
    let mut rng = rng_for(seed, TAG_PARTITION, 0, 0);
    let skew = match how {
        Partition::Iid => 0.0,
        Partition::LabelSkew(s) => s,
    };
    let mut parts = vec![Vec::new(); clients];
    let mut rr = 0usize; // global round-robin counter keeps sizes balanced
    for c in 0..2u8 {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        shuffle(&mut idx, &mut rng);
        let homes: Vec<usize> = if clients == 1 {
            vec![0]
        } else {
            (0..clients).filter(|k| k % 2 == c as usize).collect()
        };
        let n_home = (skew * idx.len() as f64).floor() as usize;
        for (t, &i) in idx[..n_home].iter().enumerate() {
            parts[homes[t % homes.len()]].push(i);
        }
        for &i in &idx[n_home..] {
            parts[rr % clients].push(i);
            rr += 1;
        }
    }
    if let Some(k) = parts.iter().position(|p| p.is_empty()) {
        return Err(FederatedError::InvalidConfig(format!(
            "client {k} received no training records"
        )));
    }
    Ok(parts)
}

// ---- validation ----------------------------------------------------------

fn validate_data(name: &str, ds: &Dataset, dim: Option<usize>) -> Result<usize, FederatedError> {
    let bad = |m: String| Err(FederatedError::InvalidData(format!("{name}: {m}")));
    if ds.x.is_empty() {
        return bad("empty".into());
    }
    if ds.x.len() != ds.y.len() {
        return bad(format!("{} rows but {} labels", ds.x.len(), ds.y.len()));
    }
    let d = dim.unwrap_or(ds.x[0].len());
    if d == 0 {
        return bad("no features".into());
    }
    for (i, row) in ds.x.iter().enumerate() {
        if row.len() != d {
            return bad(format!("row {i} has {} features, expected {d}", row.len()));
        }
        if row.iter().any(|v| !v.is_finite()) {
            return bad(format!("row {i} has a non-finite value"));
        }
    }
    if let Some(i) = ds.y.iter().position(|&v| v > 1) {
        return bad(format!("label at row {i} is {} (must be 0/1)", ds.y[i]));
    }
    Ok(d)
}

fn validate_config(c: &FederatedConfig, n_train: usize) -> Result<(), FederatedError> {
    let bad = |m: &str| Err(FederatedError::InvalidConfig(m.to_string()));
    if c.clients == 0 || c.clients > n_train {
        return bad("clients must be in 1..=number of training records");
    }
    if c.rounds == 0 || c.local_steps == 0 {
        return bad("rounds and local_steps must be >= 1");
    }
    if !(c.sampling_rate > 0.0 && c.sampling_rate <= 1.0) {
        return bad("sampling_rate must be in (0, 1]");
    }
    if !(c.learning_rate > 0.0) || !c.learning_rate.is_finite() {
        return bad("learning_rate must be finite and > 0");
    }
    if !(c.clip_norm > 0.0) || (c.clip_norm.is_infinite() && c.privacy != Privacy::NonPrivate) {
        return bad("clip_norm must be > 0 (and finite when private)");
    }
    if let Partition::LabelSkew(s) = c.partition {
        if !(0.0..=1.0).contains(&s) {
            return bad("label skew must be in [0, 1]");
        }
    }
    match c.privacy {
        Privacy::NonPrivate => {}
        Privacy::NoiseMultiplier(s) if !(s > 0.0) || !s.is_finite() => {
            return bad("noise multiplier must be finite and > 0")
        }
        Privacy::TargetEpsilon(e) if !(e > 0.0) || !e.is_finite() => {
            return bad("target epsilon must be finite and > 0")
        }
        _ => {
            if !(c.delta > 0.0 && c.delta < 1.0) {
                return bad("delta must be in (0, 1)");
            }
        }
    }
    Ok(())
}

fn xnorms(ds: &Dataset) -> Vec<f64> {
    ds.x.iter()
        .map(|x| (x.iter().map(|v| v * v).sum::<f64>() + 1.0).sqrt())
        .collect()
}

fn eps_after(
    sigma: f64,
    q: f64,
    steps: usize,
    delta: f64,
) -> Result<Option<(f64, f64)>, FederatedError> {
    if sigma == 0.0 {
        return Ok(None);
    }
    Ok(Some(dp::epsilon(q, sigma, steps as u64, delta)?))
}

// ---- driver --------------------------------------------------------------

/// Run FedAvg with client-side DP-SGD and report test metrics per round.
pub fn run(
    train: &Dataset,
    test: &Dataset,
    config: &FederatedConfig,
) -> Result<FederatedReport, FederatedError> {
    run_until(train, test, config, &|| false, &mut |_| {})
}

/// [`run`], checking `stop` before each round and each baseline: when it says yes the run
/// ends with [`FederatedError::Stopped`] (a request whose caller is gone stops computing).
/// `observe` sees each round's metrics as soon as the round ends (round 0: the untrained
/// model), the same values the report's `history` holds.
pub fn run_until(
    train: &Dataset,
    test: &Dataset,
    config: &FederatedConfig,
    stop: &dyn Fn() -> bool,
    observe: &mut dyn FnMut(&RoundMetrics),
) -> Result<FederatedReport, FederatedError> {
    let d = validate_data("train", train, None)?;
    validate_data("test", test, Some(d))?;
    validate_config(config, train.x.len())?;
    let c = config;
    let total_steps = c.rounds * c.local_steps;
    let sigma = match c.privacy {
        Privacy::NonPrivate => 0.0,
        Privacy::NoiseMultiplier(s) => s,
        Privacy::TargetEpsilon(e) => {
            dp::calibrate_noise(e, c.sampling_rate, total_steps as u64, c.delta)?
        }
    };
    let clip = c.clip_norm;
    let parts = partition(&train.y, c.clients, c.partition, c.seed)?;
    let n_total = train.x.len() as f64;
    let weights: Vec<f64> = parts.iter().map(|p| p.len() as f64 / n_total).collect();
    let xn = xnorms(train);

    let mut global = vec![0.0; d + 1];
    let mut history = Vec::with_capacity(c.rounds + 1);
    let (acc0, auc0) = evaluate(&global[..d], global[d], test);
    history.push(RoundMetrics {
        round: 0,
        accuracy: acc0,
        auc: auc0,
        epsilon_spent: if sigma == 0.0 { None } else { Some(0.0) },
    });
    observe(&history[0]);

    let h = SgdParams {
        q: c.sampling_rate,
        lr: c.learning_rate,
        clip,
        sigma,
        steps: c.local_steps,
    };
    for r in 1..=c.rounds {
        if stop() {
            return Err(FederatedError::Stopped { rounds: r - 1 });
        }
        let locals: Vec<Vec<f64>> = parts
            .iter()
            .enumerate()
            .map(|(k, idx)| {
                let mut p = global.clone();
                let mut rng = rng_for(c.seed, TAG_CLIENT, r as u64, k as u64);
                local_sgd(&mut p, train, &xn, idx, h, &mut rng);
                p
            })
            .collect();
        if c.secure_aggregation {
            let round_seed = rng_for(c.seed, TAG_SECAGG, r as u64, 0).next_u64();
            let mut masked = Vec::with_capacity(c.clients);
            for (k, p) in locals.iter().enumerate() {
                let delta: Vec<f64> = p
                    .iter()
                    .zip(&global)
                    .map(|(a, g)| (a - g) * weights[k])
                    .collect();
                masked.push(secure_agg::mask_update(
                    k,
                    c.clients,
                    round_seed,
                    &delta,
                    secure_agg::DEFAULT_SCALE,
                )?);
            }
            let sum = secure_agg::aggregate(&masked, secure_agg::DEFAULT_SCALE)?;
            for (g, s) in global.iter_mut().zip(sum) {
                *g += s;
            }
        } else {
            // sum_k w_k * local_k == global + sum_k w_k (local_k - global) since sum w_k = 1
            let mut next = vec![0.0; d + 1];
            for (k, p) in locals.iter().enumerate() {
                for (a, v) in next.iter_mut().zip(p) {
                    *a += weights[k] * v;
                }
            }
            global = next;
        }
        if global.iter().any(|v| !v.is_finite()) {
            return Err(FederatedError::InvalidConfig(format!(
                "model diverged in round {r}; lower the learning rate"
            )));
        }
        let (acc, auc) = evaluate(&global[..d], global[d], test);
        let eps = eps_after(sigma, c.sampling_rate, r * c.local_steps, c.delta)?.map(|e| e.0);
        history.push(RoundMetrics {
            round: r,
            accuracy: acc,
            auc,
            epsilon_spent: eps,
        });
        observe(&history[r]);
    }
    let final_eps = eps_after(sigma, c.sampling_rate, total_steps, c.delta)?;

    let (mut base_plain, mut base_dp) = (None, None);
    if c.baselines && stop() {
        return Err(FederatedError::Stopped { rounds: c.rounds });
    }
    if c.baselines {
        let all: Vec<usize> = (0..train.x.len()).collect();
        let plain = SgdParams {
            q: c.sampling_rate,
            lr: c.learning_rate,
            clip: f64::INFINITY,
            sigma: 0.0,
            steps: total_steps,
        };
        let mut p = vec![0.0; d + 1];
        local_sgd(
            &mut p,
            train,
            &xn,
            &all,
            plain,
            &mut rng_for(c.seed, TAG_CENTRAL_PLAIN, 0, 0),
        );
        let (accuracy, auc) = evaluate(&p[..d], p[d], test);
        base_plain = Some(BaselineReport {
            steps: total_steps,
            noise_multiplier: 0.0,
            accuracy,
            auc,
            epsilon: None,
        });
        if sigma > 0.0 {
            let dp_h = SgdParams {
                steps: total_steps,
                ..h
            };
            let mut p = vec![0.0; d + 1];
            local_sgd(
                &mut p,
                train,
                &xn,
                &all,
                dp_h,
                &mut rng_for(c.seed, TAG_CENTRAL_DP, 0, 0),
            );
            let (accuracy, auc) = evaluate(&p[..d], p[d], test);
            base_dp = Some(BaselineReport {
                steps: total_steps,
                noise_multiplier: sigma,
                accuracy,
                auc,
                epsilon: final_eps.map(|e| e.0),
            });
        }
    }

    let client_positive_fraction = parts
        .iter()
        .map(|p| p.iter().filter(|&&i| train.y[i] == 1).count() as f64 / p.len() as f64)
        .collect();
    Ok(FederatedReport {
        accounting_unit: "record-level (add/remove one training record), per client; \
                          parallel composition across clients; client sizes public"
            .into(),
        noise_multiplier: sigma,
        delta: c.delta,
        steps_per_client: total_steps,
        epsilon: final_eps.map(|e| e.0),
        rdp_order: final_eps.map(|e| e.1),
        client_sizes: parts.iter().map(|p| p.len()).collect(),
        client_positive_fraction,
        history,
        weights: global[..d].to_vec(),
        bias: global[d],
        centralised_non_private: base_plain,
        centralised_dp: base_dp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linearly separable data: y = 1 iff w*.x > 0, with a margin of 0.3.
    fn separable(n: usize, d: usize, seed: u64) -> Dataset {
        let mut rng = rng_for(seed, 99, 0, 0);
        let w: Vec<f64> = (0..d)
            .map(|j| if j % 2 == 0 { 1.0 } else { -0.5 })
            .collect();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        while x.len() < n {
            let row: Vec<f64> = (0..d).map(|_| gaussian(&mut rng)).collect();
            let s: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
            if s.abs() < 0.3 {
                continue;
            }
            y.push((s > 0.0) as u8);
            x.push(row);
        }
        Dataset { x, y }
    }

    fn cfg() -> FederatedConfig {
        FederatedConfig {
            clients: 4,
            rounds: 5,
            local_steps: 10,
            sampling_rate: 0.05,
            learning_rate: 0.5,
            clip_norm: 1.0,
            privacy: Privacy::NoiseMultiplier(1.0),
            delta: 1e-5,
            partition: Partition::Iid,
            secure_aggregation: false,
            baselines: false,
            seed: 7,
        }
    }

    #[test]
    fn one_client_no_noise_equals_centralised_sgd_exactly() {
        let train = separable(400, 4, 1);
        let test = separable(100, 4, 2);
        let c = FederatedConfig {
            clients: 1,
            rounds: 3,
            local_steps: 7,
            privacy: Privacy::NonPrivate,
            ..cfg()
        };
        let rep = run(&train, &test, &c).unwrap();
        // Independent plain mini-batch SGD with clipping on the same batches.
        let idx = &partition(&train.y, 1, Partition::Iid, c.seed).unwrap()[0];
        let (mut w, mut b) = (vec![0.0; 4], 0.0);
        let denom = c.sampling_rate * 400.0;
        for r in 1..=3u64 {
            let mut rng = rng_for(c.seed, TAG_CLIENT, r, 0);
            for _ in 0..7 {
                let batch = poisson_sample(&mut rng, idx, c.sampling_rate);
                let (mut gw, mut gb) = (vec![0.0; 4], 0.0);
                for &i in &batch {
                    let x = &train.x[i];
                    let mut z = b;
                    for j in 0..4 {
                        z += w[j] * x[j];
                    }
                    let res = 1.0 / (1.0 + (-z).exp()) - train.y[i] as f64;
                    let norm = res.abs() * (x.iter().map(|v| v * v).sum::<f64>() + 1.0).sqrt();
                    let f = if norm > 1.0 { 1.0 / norm } else { 1.0 };
                    for j in 0..4 {
                        gw[j] += f * res * x[j];
                    }
                    gb += f * res;
                }
                for j in 0..4 {
                    w[j] -= c.learning_rate * (gw[j] / denom);
                }
                b -= c.learning_rate * (gb / denom);
            }
        }
        assert_eq!(rep.weights, w);
        assert_eq!(rep.bias, b);
        assert_eq!(rep.epsilon, None);
    }

    #[test]
    fn secure_aggregation_matches_plain_within_quantisation() {
        let train = separable(800, 5, 3);
        let test = separable(200, 5, 4);
        let a = run(
            &train,
            &test,
            &FederatedConfig {
                secure_aggregation: false,
                ..cfg()
            },
        )
        .unwrap();
        let b = run(
            &train,
            &test,
            &FederatedConfig {
                secure_aggregation: true,
                ..cfg()
            },
        )
        .unwrap();
        let max_diff = a
            .weights
            .iter()
            .chain([&a.bias])
            .zip(b.weights.iter().chain([&b.bias]))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        println!("secagg on/off max |diff| = {max_diff:e}");
        // per round <= clients * 0.5 / 2^32 ~ 4.7e-10; 5 rounds with propagation
        assert!(max_diff < 1e-8 && max_diff > 0.0, "{max_diff}");
    }

    #[test]
    fn separable_accuracy_rises_above_090_with_dp() {
        let train = separable(3000, 5, 5);
        let test = separable(1000, 5, 6);
        let c = FederatedConfig {
            clients: 3,
            rounds: 10,
            secure_aggregation: true,
            baselines: true,
            ..cfg()
        };
        let rep = run(&train, &test, &c).unwrap();
        let last = rep.history.last().unwrap();
        println!(
            "initial {:?}\nfinal {:?} eps {:?}\nbaselines {:?} {:?}",
            rep.history[0], last, rep.epsilon, rep.centralised_non_private, rep.centralised_dp
        );
        assert!(rep.history[0].accuracy < 0.7);
        assert!(last.accuracy > 0.9, "{last:?}");
        assert!(last.auc.unwrap() > 0.95);
        assert_eq!(rep.history.len(), 11);
    }

    #[test]
    fn reported_epsilon_equals_accountant() {
        let train = separable(500, 3, 8);
        let test = separable(100, 3, 9);
        let c = FederatedConfig {
            privacy: Privacy::NoiseMultiplier(1.1),
            baselines: true,
            ..cfg()
        };
        let rep = run(&train, &test, &c).unwrap();
        let (e, o) = dp::epsilon(0.05, 1.1, 50, 1e-5).unwrap();
        assert_eq!(rep.epsilon, Some(e));
        assert_eq!(rep.rdp_order, Some(o));
        assert_eq!(rep.centralised_dp.as_ref().unwrap().epsilon, Some(e));
        let e3 = dp::epsilon(0.05, 1.1, 30, 1e-5).unwrap().0;
        assert_eq!(rep.history[3].epsilon_spent, Some(e3));
        // monotone in rounds
        assert!(rep
            .history
            .windows(2)
            .all(|w| w[0].epsilon_spent <= w[1].epsilon_spent));
    }

    #[test]
    fn calibrated_to_target_epsilon() {
        let train = separable(500, 3, 10);
        let test = separable(100, 3, 11);
        let rep = run(
            &train,
            &test,
            &FederatedConfig {
                privacy: Privacy::TargetEpsilon(1.0),
                ..cfg()
            },
        )
        .unwrap();
        let e = rep.epsilon.unwrap();
        println!("calibrated sigma {} eps {e}", rep.noise_multiplier);
        assert!(e <= 1.0 && e > 0.99);
    }

    #[test]
    fn deterministic_given_seed() {
        let train = separable(300, 3, 12);
        let test = separable(100, 3, 13);
        let a = run(&train, &test, &cfg()).unwrap();
        let b = run(&train, &test, &cfg()).unwrap();
        assert_eq!(a, b);
        let c = run(&train, &test, &FederatedConfig { seed: 8, ..cfg() }).unwrap();
        assert_ne!(a.weights, c.weights);
    }

    #[test]
    fn a_run_stops_between_rounds_when_told() {
        let train = separable(300, 3, 12);
        let test = separable(100, 3, 13);
        let checks = std::cell::Cell::new(0);
        let stop = || {
            checks.set(checks.get() + 1);
            checks.get() > 2
        };
        let mut seen = vec![];
        let outcome = run_until(&train, &test, &cfg(), &stop, &mut |m| seen.push(m.round));
        assert!(
            matches!(outcome, Err(FederatedError::Stopped { rounds: 2 })),
            "{outcome:?}"
        );
        assert_eq!(
            seen,
            [0, 1, 2],
            "each finished round is observed, once, in order"
        );
    }

    #[test]
    fn each_round_is_observed_as_the_history_reports_it() {
        let train = separable(300, 3, 12);
        let test = separable(100, 3, 13);
        let mut seen = vec![];
        let report = run_until(&train, &test, &cfg(), &|| false, &mut |m| {
            seen.push((m.round, m.accuracy, m.auc, m.epsilon_spent))
        })
        .unwrap();
        let history: Vec<_> = report
            .history
            .iter()
            .map(|m| (m.round, m.accuracy, m.auc, m.epsilon_spent))
            .collect();
        assert_eq!(seen, history);
        assert_eq!(seen.len(), cfg().rounds + 1);
    }

    #[test]
    fn partitions() {
        let y: Vec<u8> = (0..100).map(|i| (i % 4 == 0) as u8).collect(); // 25 positives
        let p = partition(&y, 5, Partition::Iid, 1).unwrap();
        let mut all: Vec<usize> = p.concat();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        for part in &p {
            assert_eq!(part.len(), 20);
            assert_eq!(part.iter().filter(|&&i| y[i] == 1).count(), 5); // stratified
        }
        let s = partition(&y, 4, Partition::LabelSkew(1.0), 1).unwrap();
        for (k, part) in s.iter().enumerate() {
            assert!(part.iter().all(|&i| y[i] as usize == k % 2));
        }
    }

    #[test]
    fn auc_hand_checked() {
        // scores: neg 0.1, 0.4 ; pos 0.35, 0.8 -> pairs (pos>neg): 0.35>0.1, 0.8>0.1, 0.8>0.4 = 3/4
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), Some(0.75));
        assert_eq!(roc_auc(&[0.5, 0.5], &[0, 1]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.5], &[1, 1]), None);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let train = separable(50, 2, 14);
        let test = separable(10, 2, 15);
        let bad = |c: FederatedConfig| assert!(run(&train, &test, &c).is_err());
        bad(FederatedConfig {
            clients: 0,
            ..cfg()
        });
        bad(FederatedConfig {
            clients: 51,
            ..cfg()
        });
        bad(FederatedConfig { rounds: 0, ..cfg() });
        bad(FederatedConfig {
            sampling_rate: 0.0,
            ..cfg()
        });
        bad(FederatedConfig {
            sampling_rate: 1.5,
            ..cfg()
        });
        bad(FederatedConfig {
            learning_rate: f64::NAN,
            ..cfg()
        });
        bad(FederatedConfig {
            clip_norm: f64::INFINITY,
            ..cfg()
        });
        bad(FederatedConfig {
            delta: 0.0,
            ..cfg()
        });
        bad(FederatedConfig {
            privacy: Privacy::NoiseMultiplier(-1.0),
            ..cfg()
        });
        bad(FederatedConfig {
            privacy: Privacy::TargetEpsilon(0.0),
            ..cfg()
        });
        bad(FederatedConfig {
            partition: Partition::LabelSkew(2.0),
            ..cfg()
        });
        let mut t2 = train.clone();
        t2.y[0] = 2;
        assert!(run(&t2, &test, &cfg()).is_err());
        let mut t3 = train.clone();
        t3.x[1].pop();
        assert!(run(&t3, &test, &cfg()).is_err());
        let mut t4 = train.clone();
        t4.x[0][0] = f64::NAN;
        assert!(run(&t4, &test, &cfg()).is_err());
        assert!(run(
            &Dataset {
                x: vec![],
                y: vec![]
            },
            &test,
            &cfg()
        )
        .is_err());
        let wrong_dim = Dataset {
            x: vec![vec![0.0; 3]],
            y: vec![1],
        };
        assert!(run(&train, &wrong_dim, &cfg()).is_err());
    }
}
