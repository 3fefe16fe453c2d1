//! `POST /anomaly/detect`: an isolation forest ([`mesh_numeric::iforest`]) over the caller's data.
//!
//! - **Univariate** `values` (a metric over time, oldest first): each point becomes four
//!   four features derived from the series, with a window `w` = n/10 clamped to 3..=24: the
//!   value; its deviation from the median of the `2w` points around it (a spike, a drop or
//!   the first points of a new level stand out here, the point after a spike does not); the
//!   median absolute first difference over the `w` points around it (volatility); and the
//!   step, mean of the `w` points from it minus mean of the `w` before (a level shift).
//!   Windows near the ends are shifted inwards, not cut, so the first and last points are
//!   judged alike.
//! - **Multivariate** `points: [[f64]]` (one row per observation, optional `feature_names`):
//!   the rows as they are.
//!
//! Every point gets an anomaly score in (0, 1) (higher is more anomalous, 0.5 unremarkable).
//! Which points are anomalies: with `contamination` c, the ceil(c n) highest scores; by
//! default (auto), a score above 0.5 (the paper's and scikit-learn's automatic threshold)
//! confirmed by a feature that is extreme for this data. For points: some feature with a
//! modified z, (x - median) / (1.4826 MAD), of at least 3.5 (Iglewicz and Hoaglin's rule).
//! For a series, against its typical step (median absolute first difference): a deviation
//! with a modified z of at least 3.5, a volatility above 2.5 typical steps, or a change point
//! (a step above 3 typical steps, with a modified z of at least 3.5 among the series' steps,
//! and no smaller than its neighbours' steps). Severity is the score's own modified z among
//! all scores: Critical >= 4, High >= 3, Medium >= 2, Low below. `confidence` is the
//! fraction of points scoring lower.
//!
//! The type of a univariate anomaly: `level_shift` at a change point (only the highest
//! scoring one within `w` points is kept), `volatility` when the median absolute difference
//! around it exceeds 2.5 typical steps, otherwise `spike` or `drop` by the sign of its
//! deviation. A multivariate anomaly is an `outlier`, with the features that deviate most
//! (robust z per feature).

use std::borrow::Cow;

use mesh_numeric::iforest::{ForestOptions, IsolationForest};
use mesh_numeric::stats::{mad, mean, median, std_dev};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{now_iso8601, Agent, AgentError, AgentKind};

/// Most points one request may hold.
pub const MAX_POINTS: usize = 100_000;
/// Most features of a multivariate point.
pub const MAX_FEATURES: usize = 256;
/// Fewest points the forest is fitted on.
pub const MIN_POINTS: usize = 8;
/// Version of the detector (features, thresholds, severity rule), part of `model_used`.
pub const DETECTOR_VERSION: &str = "1";

/// A request: `values` (univariate) or `points` (multivariate).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRequest {
    /// What the values measure (echoed; default "custom").
    #[serde(default)]
    pub metric_type: Option<String>,
    /// The time span the values cover (echoed; accepted for the prototype's clients).
    #[serde(default)]
    pub time_range_hours: Option<f64>,
    /// A univariate series, oldest first.
    #[serde(default)]
    pub values: Option<Vec<f64>>,
    /// Optional time stamps, one per value or point, reported as `detected_at`.
    #[serde(default)]
    pub timestamps: Option<Vec<String>>,
    /// Multivariate observations, one row each, all of the same length.
    #[serde(default)]
    pub points: Option<Vec<Vec<f64>>>,
    /// Names of the columns of `points`.
    #[serde(default)]
    pub feature_names: Option<Vec<String>>,
    /// Expected share of anomalies in (0, 0.5]; absent means automatic (see the module doc).
    #[serde(default)]
    pub contamination: Option<f64>,
    /// Return `anomaly_scores`, one per input point in input order.
    #[serde(default)]
    pub return_scores: bool,
    /// Seed of the forest (default 42); the same request and seed give the same answer.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Number of trees (default 100, at most 1000).
    #[serde(default)]
    pub n_trees: Option<usize>,
}

/// One feature's deviation at an anomaly (multivariate).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deviation {
    pub feature: String,
    pub value: f64,
    /// (value - median) / (1.4826 MAD) of the feature.
    pub robust_z: f64,
}

/// One detected anomaly.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Anomaly {
    pub anomaly_id: String,
    /// Position in the input (0-based).
    pub index: usize,
    /// spike, drop, level_shift, volatility (univariate) or outlier (multivariate).
    #[serde(rename = "type")]
    pub kind: String,
    /// Low, Medium, High or Critical.
    pub severity: String,
    /// Fraction of points scoring lower.
    pub confidence: f64,
    /// The value (univariate) or the point's most deviating feature value (multivariate).
    pub value: f64,
    pub anomaly_score: f64,
    /// The caller's time stamp of the point, when given.
    pub detected_at: Option<String>,
    /// The most deviating features (multivariate only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deviations: Vec<Deviation>,
}

/// Summary statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Statistics {
    pub mean_value: f64,
    /// Sample standard deviation (n - 1).
    pub std_dev: f64,
    pub min_value: f64,
    pub max_value: f64,
    pub median: f64,
}

/// Statistics of one feature (multivariate).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeatureStatistics {
    pub feature: String,
    #[serde(flatten)]
    pub statistics: Statistics,
}

/// The answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnomalyResponse {
    pub metric_type: String,
    pub time_range_hours: Option<f64>,
    pub data_points_analyzed: usize,
    pub anomalies_detected: usize,
    pub anomalies: Vec<Anomaly>,
    /// The highest severity found, or "None".
    pub highest_severity: String,
    /// The score above which a point counts as an anomaly.
    pub threshold: f64,
    /// How the threshold was set: the automatic rule or "contamination 0.05".
    pub threshold_rule: String,
    /// The features the forest saw.
    pub features_used: Vec<String>,
    /// One score per input point, in input order (when `return_scores`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly_scores: Option<Vec<f64>>,
    /// Of the values (univariate) or of the anomaly scores (multivariate; see `statistics_of`).
    pub statistics: Statistics,
    /// "values" or "anomaly_score".
    pub statistics_of: String,
    /// Per feature (multivariate only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feature_statistics: Vec<FeatureStatistics>,
    pub model_used: String,
    pub timestamp: String,
}

/// The anomaly-detection agent (no weights: the forest is fitted on each request's data).
#[derive(Debug, Default)]
pub struct AnomalyAgent;

impl crate::Answer for AnomalyResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for AnomalyAgent {
    type Request = AnomalyRequest;
    type Response = AnomalyResponse;
    const KIND: AgentKind = AgentKind::AnomalyDetection;

    fn model_used(&self) -> String {
        format!("isolation-forest@{DETECTOR_VERSION}")
    }

    async fn handle(&self, request: AnomalyRequest) -> Result<AnomalyResponse, AgentError> {
        let model = self.model_used();
        tokio::task::spawn_blocking(move || detect(&request, &model))
            .await
            .map_err(|e| AgentError::Unavailable(format!("the detector stopped: {e}")))?
    }
}

/// Runs the detector on one request.
pub fn detect(request: &AnomalyRequest, model: &str) -> Result<AnomalyResponse, AgentError> {
    let input = Input::validate(request)?;
    let options = ForestOptions {
        n_trees: request.n_trees.unwrap_or(100),
        seed: request.seed.unwrap_or(42),
        ..ForestOptions::default()
    };
    // The forest reads the caller's points where they are: the request is the only copy.
    let (rows, features_used): (Cow<[Vec<f64>]>, Vec<String>) = match &input {
        Input::Series(values) => (
            Cow::Owned(series_features(values)),
            SERIES_FEATURES.map(String::from).to_vec(),
        ),
        Input::Points { points, names } => (Cow::Borrowed(*points), names.clone()),
    };
    let forest = IsolationForest::fit(&rows, &options);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scores = forest.score_all(&rows, threads);
    let (threshold, threshold_rule) = threshold(&scores, request.contamination);
    let score_median = median(&scores);
    let score_spread = 1.4826 * mad(&scores, score_median);
    let extreme = Extremes::of(&input, &rows);
    let mut anomalies = Vec::new();
    for (i, &score) in scores.iter().enumerate() {
        if score <= threshold || (request.contamination.is_none() && !extreme.at(&rows, i)) {
            continue;
        }
        let z = if score_spread > 0.0 {
            (score - score_median) / score_spread
        } else {
            f64::INFINITY
        };
        let (kind, value, deviations) = match &input {
            Input::Series(values) => (extreme.series_type(&rows, i).to_string(), values[i], vec![]),
            Input::Points { points, names } => {
                let deviations = deviations(points, names, extreme.feature_stats(), i);
                let value = deviations.first().map_or(f64::NAN, |d| d.value);
                ("outlier".to_string(), value, deviations)
            }
        };
        anomalies.push(Anomaly {
            anomaly_id: format!("anomaly-{i}"),
            index: i,
            kind,
            severity: severity(z).to_string(),
            confidence: scores.iter().filter(|&&s| s < score).count() as f64 / scores.len() as f64,
            value,
            anomaly_score: score,
            detected_at: request.timestamps.as_ref().map(|t| t[i].clone()),
            deviations,
        });
    }
    if let Input::Series(values) = &input {
        suppress_repeated_shifts(&mut anomalies, window(values.len()));
    }
    let highest_severity = SEVERITIES
        .iter()
        .rev()
        .find(|s| anomalies.iter().any(|a| a.severity == **s))
        .map_or("None", |s| s)
        .to_string();
    let (statistics, statistics_of, feature_statistics) = match &input {
        Input::Series(values) => (Statistics::of(values), "values", vec![]),
        Input::Points { points, names } => (
            Statistics::of(&scores),
            "anomaly_score",
            names
                .iter()
                .enumerate()
                .map(|(f, name)| FeatureStatistics {
                    feature: name.clone(),
                    statistics: Statistics::of(&points.iter().map(|p| p[f]).collect::<Vec<_>>()),
                })
                .collect(),
        ),
    };
    Ok(AnomalyResponse {
        metric_type: request
            .metric_type
            .clone()
            .unwrap_or_else(|| "custom".into()),
        time_range_hours: request.time_range_hours,
        data_points_analyzed: rows.len(),
        anomalies_detected: anomalies.len(),
        anomalies,
        highest_severity,
        threshold,
        threshold_rule,
        features_used,
        anomaly_scores: request.return_scores.then_some(scores),
        statistics,
        statistics_of: statistics_of.into(),
        feature_statistics,
        model_used: format!(
            "{model} ({} trees, subsample {}, seed {})",
            options.n_trees,
            options.sample_size.min(rows.len()),
            options.seed
        ),
        timestamp: now_iso8601(),
    })
}

const SEVERITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];
const SERIES_FEATURES: [&str; 4] = [
    "value",
    "deviation_from_neighbours_median",
    "median_absolute_difference_around",
    "step",
];

/// The modified z-score from which a point counts as an anomaly by default.
const AUTO_Z: f64 = 3.5;

fn severity(robust_z: f64) -> &'static str {
    match robust_z {
        z if z >= 4.0 => "Critical",
        z if z >= 3.0 => "High",
        z if z >= 2.0 => "Medium",
        _ => "Low",
    }
}

/// The validated input, borrowed from the request.
enum Input<'a> {
    Series(&'a [f64]),
    Points {
        points: &'a [Vec<f64>],
        names: Vec<String>,
    },
}

impl<'a> Input<'a> {
    fn validate(r: &'a AnomalyRequest) -> Result<Self, AgentError> {
        if let Some(c) = r.contamination {
            if !(c > 0.0 && c <= 0.5) {
                return Err(AgentError::invalid("contamination", "must be in (0, 0.5]"));
            }
        }
        if let Some(n) = r.n_trees {
            if !(1..=1000).contains(&n) {
                return Err(AgentError::invalid("n_trees", "must be between 1 and 1000"));
            }
        }
        if let Some(h) = r.time_range_hours {
            if !h.is_finite() || h < 0.0 {
                return Err(AgentError::invalid(
                    "time_range_hours",
                    "must be a non-negative number",
                ));
            }
        }
        let input = match (&r.values, &r.points) {
            (Some(_), Some(_)) => {
                return Err(AgentError::invalid("points", "send either `values` or `points`, not both"))
            }
            (None, None) => {
                return Err(AgentError::invalid(
                    "values",
                    "send the metric's `values` (oldest first) or multivariate `points`; nothing is generated on the caller's behalf",
                ))
            }
            (Some(values), None) => {
                check_count("values", values.len())?;
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(AgentError::invalid(&format!("values[{i}]"), "must be a finite number"));
                }
                Input::Series(values)
            }
            (None, Some(points)) => {
                check_count("points", points.len())?;
                let dim = points[0].len();
                if dim == 0 || dim > MAX_FEATURES {
                    return Err(AgentError::invalid("points[0]", format!("must hold 1 to {MAX_FEATURES} features")));
                }
                for (i, p) in points.iter().enumerate() {
                    if p.len() != dim {
                        return Err(AgentError::invalid(
                            &format!("points[{i}]"),
                            format!("holds {} features; points[0] holds {dim}", p.len()),
                        ));
                    }
                    if let Some(j) = p.iter().position(|v| !v.is_finite()) {
                        return Err(AgentError::invalid(&format!("points[{i}][{j}]"), "must be a finite number"));
                    }
                }
                let names = match &r.feature_names {
                    Some(names) if names.len() != dim => {
                        return Err(AgentError::invalid(
                            "feature_names",
                            format!("holds {} names for {dim} features", names.len()),
                        ))
                    }
                    Some(names) => names.clone(),
                    None => (0..dim).map(|f| format!("feature_{f}")).collect(),
                };
                Input::Points { points, names }
            }
        };
        if r.feature_names.is_some() && r.points.is_none() {
            return Err(AgentError::invalid(
                "feature_names",
                "only applies to `points`",
            ));
        }
        let n = match &input {
            Input::Series(v) => v.len(),
            Input::Points { points, .. } => points.len(),
        };
        if let Some(t) = &r.timestamps {
            if t.len() != n {
                return Err(AgentError::invalid(
                    "timestamps",
                    format!("holds {} time stamps for {n} points", t.len()),
                ));
            }
        }
        Ok(input)
    }
}

fn check_count(field: &str, n: usize) -> Result<(), AgentError> {
    if n < MIN_POINTS {
        return Err(AgentError::invalid(
            field,
            format!("holds {n} points; the forest needs at least {MIN_POINTS}"),
        ));
    }
    if n > MAX_POINTS {
        return Err(AgentError::invalid(
            field,
            format!("holds {n} points; at most {MAX_POINTS}"),
        ));
    }
    Ok(())
}

/// The window of the derived features: n/10 clamped to 3..=24.
fn window(n: usize) -> usize {
    (n / 10).clamp(3, 24)
}

/// The four features of each point of a series (see the module doc).
pub fn series_features(values: &[f64]) -> Vec<Vec<f64>> {
    let w = window(values.len());
    (0..values.len())
        .map(|t| {
            vec![
                values[t],
                values[t] - centred_median(values, t, w),
                local_volatility(values, t, w),
                step(
                    values,
                    t.clamp(
                        w.min(values.len() / 2),
                        values.len() - w.min(values.len() / 2),
                    ),
                    w,
                ),
            ]
        })
        .collect()
}

/// The window of `len` points around `t`, shifted (not cut) to fit inside the series at the ends.
fn window_around(n: usize, t: usize, len: usize) -> std::ops::Range<usize> {
    let len = len.min(n);
    let start = t.saturating_sub(len / 2).min(n - len);
    start..start + len
}

/// Median of the `2w` points around `t` (without `t` itself).
fn centred_median(values: &[f64], t: usize, w: usize) -> f64 {
    let neighbours: Vec<f64> = window_around(values.len(), t, 2 * w + 1)
        .filter(|&i| i != t)
        .map(|i| values[i])
        .collect();
    if neighbours.is_empty() {
        values[t]
    } else {
        median(&neighbours)
    }
}

/// Mean of the `k` points from `t` on minus the mean of the `k` points before it, with `k` =
/// `w` shortened symmetrically near the ends (0 at the first point).
fn step(values: &[f64], t: usize, w: usize) -> f64 {
    let k = w.min(t).min(values.len() - t);
    if k == 0 {
        return 0.0;
    }
    mean(&values[t..t + k]) - mean(&values[t - k..t])
}

/// Median absolute first difference over the `w` points around `t`.
fn local_volatility(values: &[f64], t: usize, w: usize) -> f64 {
    let around = window_around(values.len(), t, w + 1);
    let diffs: Vec<f64> = around
        .clone()
        .skip(1)
        .map(|i| (values[i] - values[i - 1]).abs())
        .collect();
    if diffs.is_empty() {
        0.0
    } else {
        median(&diffs)
    }
}

/// Keeps, of level shifts closer than `w` points to each other, the one scoring highest.
fn suppress_repeated_shifts(anomalies: &mut Vec<Anomaly>, w: usize) {
    let shifts: Vec<(usize, f64)> = anomalies
        .iter()
        .filter(|a| a.kind == "level_shift")
        .map(|a| (a.index, a.anomaly_score))
        .collect();
    anomalies.retain(|a| {
        a.kind != "level_shift"
            || !shifts.iter().any(|&(i, s)| {
                i != a.index
                    && i.abs_diff(a.index) < w
                    && (s > a.anomaly_score || (s == a.anomaly_score && i < a.index))
            })
    });
}

/// The (up to three) features of point `i` with the largest robust z, from each feature's
/// median and 1.4826 MAD (`centre_spread`).
fn deviations(
    points: &[Vec<f64>],
    names: &[String],
    centre_spread: &[(f64, f64)],
    i: usize,
) -> Vec<Deviation> {
    let mut out: Vec<Deviation> = (0..names.len())
        .map(|f| {
            let (m, spread) = centre_spread[f];
            let d = points[i][f] - m;
            let robust_z = if spread > 0.0 {
                d / spread
            } else if d == 0.0 {
                0.0
            } else {
                d.signum() * f64::MAX
            };
            Deviation {
                feature: names[f].clone(),
                value: points[i][f],
                robust_z,
            }
        })
        .collect();
    out.sort_by(|a, b| b.robust_z.abs().total_cmp(&a.robust_z.abs()));
    out.truncate(3);
    out
}

/// The automatic rule's second half: is a point extreme for this data?
enum Extremes {
    /// Series: median and 1.4826 MAD of the deviation and step features, and the typical step.
    Series {
        deviation: (f64, f64),
        step: (f64, f64),
        typical_step: f64,
    },
    /// Points: per feature, median and 1.4826 MAD.
    Points(Vec<(f64, f64)>),
}

impl Extremes {
    fn of(input: &Input, rows: &[Vec<f64>]) -> Self {
        let centre_spread = |f: usize| {
            let column: Vec<f64> = rows.iter().map(|r| r[f]).collect();
            let m = median(&column);
            (m, 1.4826 * mad(&column, m))
        };
        match input {
            Input::Series(values) => {
                let steps: Vec<f64> = values.windows(2).map(|p| (p[1] - p[0]).abs()).collect();
                Self::Series {
                    deviation: centre_spread(DEVIATION_FEATURE),
                    step: centre_spread(STEP_FEATURE),
                    typical_step: median(&steps),
                }
            }
            Input::Points { .. } => Self::Points((0..rows[0].len()).map(centre_spread).collect()),
        }
    }

    fn at(&self, rows: &[Vec<f64>], i: usize) -> bool {
        match self {
            Self::Series {
                deviation,
                typical_step,
                ..
            } => {
                far(rows[i][DEVIATION_FEATURE], *deviation)
                    || rows[i][VOLATILITY_FEATURE] > 2.5 * typical_step
                    || self.is_level_shift(rows, i)
            }
            Self::Points(centre_spread) => rows[i]
                .iter()
                .zip(centre_spread)
                .any(|(&x, &cs)| far(x, cs)),
        }
    }

    /// Per feature of the points, median and 1.4826 MAD (empty for a series).
    fn feature_stats(&self) -> &[(f64, f64)] {
        match self {
            Self::Points(centre_spread) => centre_spread,
            Self::Series { .. } => &[],
        }
    }

    /// A change point: a step above 3 typical steps, extreme among the series' steps
    /// (modified z >= 3.5), and at least as large as its neighbours' steps.
    fn is_level_shift(&self, rows: &[Vec<f64>], i: usize) -> bool {
        match self {
            Self::Series {
                step, typical_step, ..
            } => {
                let x = rows[i][STEP_FEATURE];
                x.abs() > 3.0 * typical_step && far(x, *step) && is_step_peak(rows, i)
            }
            Self::Points(_) => false,
        }
    }

    /// spike, drop, level_shift or volatility for point `i` of a series (see the module doc).
    fn series_type(&self, rows: &[Vec<f64>], i: usize) -> &'static str {
        let Self::Series { typical_step, .. } = self else {
            return "outlier";
        };
        if self.is_level_shift(rows, i) {
            "level_shift"
        } else if rows[i][VOLATILITY_FEATURE] > 2.5 * typical_step {
            "volatility"
        } else if rows[i][DEVIATION_FEATURE] >= 0.0 {
            "spike"
        } else {
            "drop"
        }
    }
}

/// Whether `x` lies at least [`AUTO_Z`] robust standard deviations from `centre`.
fn far(x: f64, (centre, spread): (f64, f64)) -> bool {
    if spread > 0.0 {
        ((x - centre) / spread).abs() >= AUTO_Z
    } else {
        x != centre
    }
}

/// True when the step at `i` is at least as large as its neighbours' (a change point).
fn is_step_peak(rows: &[Vec<f64>], i: usize) -> bool {
    let step = |j: usize| rows[j][STEP_FEATURE].abs();
    (i == 0 || step(i) >= step(i - 1)) && (i + 1 == rows.len() || step(i) >= step(i + 1))
}

/// Positions of the derived features among [`SERIES_FEATURES`].
const DEVIATION_FEATURE: usize = 1;
const VOLATILITY_FEATURE: usize = 2;
const STEP_FEATURE: usize = 3;

/// The anomaly threshold and the rule that set it.
fn threshold(scores: &[f64], contamination: Option<f64>) -> (f64, String) {
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    match contamination {
        Some(c) => {
            let k = ((c * scores.len() as f64).ceil() as usize).clamp(1, scores.len());
            // Everything strictly above the (k+1)-th highest score: the k highest (fewer on ties).
            let cut = if k >= sorted.len() {
                f64::NEG_INFINITY
            } else {
                sorted[sorted.len() - k - 1]
            };
            (cut, format!("contamination {c}"))
        }
        None => (
            0.5,
            "auto: score above 0.5 and a feature extreme for this data (see the docs)".into(),
        ),
    }
}

impl Statistics {
    fn of(values: &[f64]) -> Self {
        let m = mean(values);
        Self {
            mean_value: m,
            std_dev: std_dev(values, m),
            min_value: values.iter().copied().fold(f64::INFINITY, f64::min),
            max_value: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            median: median(values),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily-cycle metric with small deterministic jitter (no randomness in the fixture).
    fn base_series(n: usize) -> Vec<f64> {
        (0..n)
            .map(|t| {
                let t = t as f64;
                50.0 + 5.0 * (2.0 * std::f64::consts::PI * t / 24.0).sin() + 0.3 * ((t * 7.3).sin())
            })
            .collect()
    }

    /// (index, type) of every anomaly found.
    fn found(r: &AnomalyResponse) -> Vec<(usize, &str)> {
        r.anomalies
            .iter()
            .map(|a| (a.index, a.kind.as_str()))
            .collect()
    }

    fn request(values: Vec<f64>) -> AnomalyRequest {
        AnomalyRequest {
            values: Some(values),
            return_scores: true,
            ..Default::default()
        }
    }

    #[test]
    fn planted_spike_and_drop_are_found_and_typed() {
        let mut values = base_series(240);
        values[60] += 40.0;
        values[150] -= 35.0;
        let r = detect(&request(values), "test").unwrap();
        let found = found(&r);
        assert_eq!(
            found,
            vec![(60, "spike"), (150, "drop")],
            "{:?}",
            r.anomalies
        );
        let scores = r.anomaly_scores.clone().unwrap();
        assert_eq!(scores.len(), 240);
        let top = (0..240)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        assert!(top == 60 || top == 150);
        let severities: Vec<&str> = r.anomalies.iter().map(|a| a.severity.as_str()).collect();
        assert_eq!(
            severities,
            vec!["Critical", "Critical"],
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn a_clean_series_has_no_anomalies() {
        let r = detect(&request(base_series(240)), "test").unwrap();
        assert_eq!(r.anomalies_detected, 0, "{:?}", r.anomalies);
        assert_eq!(r.highest_severity, "None");
    }

    #[test]
    fn a_level_shift_is_typed_as_such() {
        let mut values = base_series(240);
        for v in &mut values[120..] {
            *v += 30.0;
        }
        let r = detect(&request(values), "test").unwrap();
        let found = found(&r);
        assert_eq!(found, vec![(120, "level_shift")], "{:?}", r.anomalies);
    }

    #[test]
    fn a_burst_of_volatility_is_typed_as_such() {
        let mut values = base_series(240);
        for (k, v) in values[100..112].iter_mut().enumerate() {
            *v += if k % 2 == 0 { 12.0 } else { -12.0 };
        }
        let r = detect(&request(values), "test").unwrap();
        assert!(!r.anomalies.is_empty());
        assert!(
            r.anomalies.iter().all(|a| (98..114).contains(&a.index)),
            "{:?}",
            r.anomalies
        );
        assert!(
            r.anomalies.iter().any(|a| a.kind == "volatility"),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn contamination_takes_the_top_share_and_statistics_are_exact() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let r = detect(
            &AnomalyRequest {
                values: Some(values),
                contamination: Some(0.1),
                ..Default::default()
            },
            "test",
        )
        .unwrap();
        assert_eq!(r.anomalies_detected, 2);
        // 1..=20: mean 10.5, sample sd sqrt(35), median 10.5.
        assert_eq!(r.statistics.mean_value, 10.5);
        assert!((r.statistics.std_dev - 35f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            (
                r.statistics.min_value,
                r.statistics.max_value,
                r.statistics.median
            ),
            (1.0, 20.0, 10.5)
        );
    }

    #[test]
    fn multivariate_outlier_names_its_feature_and_runs_repeat() {
        let mut points: Vec<Vec<f64>> = (0..300)
            .map(|i| {
                vec![
                    (i % 15) as f64,
                    (i / 15) as f64 * 0.5,
                    ((i * 7) % 11) as f64,
                ]
            })
            .collect();
        points[42][1] = 80.0;
        let names = vec!["cpu".to_string(), "memory".to_string(), "disk".to_string()];
        let req = AnomalyRequest {
            points: Some(points),
            feature_names: Some(names),
            return_scores: true,
            ..Default::default()
        };
        let r = detect(&req, "test").unwrap();
        assert_eq!(r.anomalies.len(), 1, "{:?}", r.anomalies);
        assert_eq!(r.anomalies[0].index, 42);
        assert_eq!(r.anomalies[0].deviations[0].feature, "memory");
        assert_eq!(r.anomalies[0].value, 80.0);
        let again = detect(&req, "test").unwrap();
        assert_eq!(again.anomaly_scores, r.anomaly_scores);
    }

    #[test]
    fn bad_input_names_the_field() {
        let field = |r: AnomalyRequest| match detect(&r, "t") {
            Err(AgentError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(AnomalyRequest::default()), "values");
        assert_eq!(field(request(vec![1.0; 3])), "values");
        let mut nan = vec![1.0; 20];
        nan[4] = f64::NAN;
        assert_eq!(field(request(nan)), "values[4]");
        assert_eq!(
            field(AnomalyRequest {
                contamination: Some(0.9),
                ..request(vec![1.0; 20])
            }),
            "contamination"
        );
        assert_eq!(
            field(AnomalyRequest {
                timestamps: Some(vec!["a".into()]),
                ..request(vec![1.0; 20])
            }),
            "timestamps"
        );
        let mut ragged = vec![vec![1.0, 2.0]; 10];
        ragged[3] = vec![1.0];
        assert_eq!(
            field(AnomalyRequest {
                points: Some(ragged),
                ..Default::default()
            }),
            "points[3]"
        );
    }
}
