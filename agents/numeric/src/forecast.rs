//! Revenue forecasting: our port of augurs' non-seasonal AutoETS ([`additive_ets`]), augurs'
//! MSTL and Forecaster transforms, and our seasonal ETS ([`seasonal_ets`]).
//!
//! Every number in a [`Forecast`] is computed from the caller's history; every
//! result names the method that produced it, and any simple fallback says why.
//!
//! Candidates, each scored by mean sMAPE over up to 3 rolling-origin holdout
//! folds at the history's tail (fit on everything before each fold):
//! - `drift (random walk with drift)`: last value plus the mean historical change,
//! - `AutoETS(..)`: non-seasonal AutoETS with additive errors (`AZN`: the log-scale
//!   candidates stand in for multiplicative ones), augurs 0.10's search ported to
//!   [`additive_ets`] (several times faster, and with the damped forecast's sum corrected),
//! - `augurs MSTL[p..] + AutoETS(..)`: MSTL decomposition (stlrs default
//!   seasonal window), AutoETS on the seasonally adjusted series, seasonal
//!   part repeated from the last cycle,
//! - `augurs MSTL[p..] periodic + AutoETS(..)`: the same with a periodic
//!   (fixed-shape) seasonal component, like R's `s.window = "periodic"`,
//! - `augurs MSTL[p..] robust [periodic] + ..`: both with robust (outlier
//!   down-weighting) STL iterations,
//! - `ETS(E,T,A)[p] (own implementation)`: seasonal ETS state-space models
//!   (see [`seasonal_ets`]; E in {A, M}, T in {N, A, Ad}, additive season of
//!   length p <= 24), the form chosen by AICc,
//! - all of the above but drift again on the log scale when every value is > 0 (points and interval
//!   bounds back-transformed with `exp`, so points are medians; there the
//!   seasonal ETS models have additive errors only too, and stand in for
//!   multiplicative seasonality).
//!
//! Each ETS candidate first fits the full history, where AutoETS / AICc chooses its form
//! (that fit is the forecast served if it wins); its folds then refit that form only (a fold
//! too short for it searches), so a candidate costs one search instead of one per fold. The
//! best mean sMAPE wins; ties go to the simpler candidate. Histories shorter than
//! [`MIN_MODEL_POINTS`], or where every candidate fails, get a labelled drift / naive fallback.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use augurs::forecaster::transforms::Log;
use augurs::forecaster::{Forecaster, Transformer};
use augurs::mstl::stlrs::MstlParams;
use augurs::mstl::{FittedTrendModel, MSTLModel, TrendModel};
use augurs::{Fit, ForecastIntervals, Predict};

pub(crate) mod additive_ets;
pub(crate) mod seasonal_ets;

/// Largest accepted horizon.
pub const MAX_HORIZON: usize = 3650;
/// Histories shorter than this get a drift / naive fallback instead of a model.
pub const MIN_MODEL_POINTS: usize = 8;
/// Fewest points left for fitting when a holdout is cut off for scoring.
const MIN_TRAIN_POINTS: usize = 7;

/// What to forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastOptions {
    /// Number of steps ahead (1..=[`MAX_HORIZON`]).
    pub horizon: usize,
    /// Seasonal periods in steps (each >= 2); empty = no seasonality.
    pub season_lengths: Vec<usize>,
    /// Prediction-interval coverage in (0, 1), e.g. 0.95.
    pub level: f64,
}

/// One candidate considered during model selection.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateScore {
    /// Method name, e.g. `augurs MSTL[12] + AutoETS(A,Ad,N) on log scale`, `AutoETS(A,N,N)`.
    pub name: String,
    /// Mean holdout sMAPE (percent) over the folds; `None` if not scored.
    pub smape: Option<f64>,
    /// Why the candidate was skipped or failed, if it was.
    pub note: Option<String>,
}

/// A forecast with prediction intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Method that produced `point`, `lower` and `upper`.
    pub method: String,
    /// Point forecasts, `horizon` long.
    pub point: Vec<f64>,
    /// Lower interval bounds (may be `-inf` when no interval can be estimated).
    pub lower: Vec<f64>,
    /// Upper interval bounds (may be `+inf` when no interval can be estimated).
    pub upper: Vec<f64>,
    /// Interval coverage.
    pub level: f64,
    /// Why a simple fallback method was used instead of a model; `None` if not.
    pub fallback: Option<String>,
    /// Holdout size (points) of each scoring fold; 0 if none.
    pub holdout: usize,
    /// Number of rolling-origin holdout folds averaged per candidate; 0 if none.
    pub folds: usize,
    /// All candidates considered, with their holdout sMAPE.
    pub candidates: Vec<CandidateScore>,
}

/// Invalid input; the message starts with the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    /// The history has no points.
    #[error("history: is empty")]
    EmptyHistory,
    /// A history value is NaN or infinite.
    #[error("history: value at index {index} is not finite ({value})")]
    NonFiniteHistory {
        /// Position of the first bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// Horizon outside 1..=MAX_HORIZON.
    #[error("horizon: must be between 1 and {max}, got {horizon}")]
    InvalidHorizon {
        /// Requested horizon.
        horizon: usize,
        /// Largest accepted horizon.
        max: usize,
    },
    /// A season length below 2.
    #[error("season_length: each season length must be >= 2, got {0}")]
    InvalidSeasonLength(usize),
    /// Level outside (0, 1).
    #[error("level: must be strictly between 0 and 1, got {0}")]
    InvalidLevel(f64),
    /// A date string could not be used.
    #[error("dates: {0}")]
    InvalidDates(String),
}

impl ForecastError {
    /// Name of the input field the error refers to.
    pub fn field(&self) -> &'static str {
        match self {
            Self::EmptyHistory | Self::NonFiniteHistory { .. } => "history",
            Self::InvalidHorizon { .. } => "horizon",
            Self::InvalidSeasonLength(_) => "season_length",
            Self::InvalidLevel(_) => "level",
            Self::InvalidDates(_) => "dates",
        }
    }
}

/// Forecast `options.horizon` steps after `history` (oldest first).
pub fn forecast(history: &[f64], options: &ForecastOptions) -> Result<Forecast, ForecastError> {
    forecast_with(history, options, &Selection::default())
}

/// Model-selection settings (internal; the defaults are what [`forecast`] uses).
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    /// Rolling-origin folds (each `holdout` long) averaged per candidate.
    pub(crate) folds: usize,
    /// Also try robust-STL variants of the MSTL candidates.
    pub(crate) robust: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            folds: 3,
            robust: true,
        }
    }
}

pub(crate) fn forecast_with(
    history: &[f64],
    options: &ForecastOptions,
    sel: &Selection,
) -> Result<Forecast, ForecastError> {
    validate(history, options)?;
    let n = history.len();
    let (h, level) = (options.horizon, options.level);
    if n < MIN_MODEL_POINTS {
        let why = format!(
            "history has {n} points; at least {MIN_MODEL_POINTS} are needed to fit and score a model"
        );
        return Ok(fallback(history, h, level, why, Vec::new(), 0, 0));
    }

    // Season lengths that fit the full history (>= 2 full seasons).
    let mut seasons: Vec<usize> = options.season_lengths.clone();
    seasons.sort_unstable();
    seasons.dedup();
    let (fitting, too_long): (Vec<usize>, Vec<usize>) = seasons.iter().partition(|&&p| n >= 2 * p);

    let holdout = holdout_size(n, h, &fitting);
    // Rolling origins: fold k trains on history[..n - k*holdout]; every fold must
    // leave MIN_TRAIN_POINTS and (if seasonal) two full seasons for training.
    let min_train = fitting
        .iter()
        .max()
        .map_or(0, |p| 2 * p)
        .max(MIN_TRAIN_POINTS);
    let folds = (1..=sel.folds.max(1))
        .take_while(|k| n >= k * holdout + min_train)
        .count()
        .max(1);
    let positive = history.iter().all(|&v| v > 0.0);

    let mut specs = Vec::new();
    for scale in [Scale::Raw, Scale::Log] {
        if scale != Scale::Raw && !positive {
            continue;
        }
        let plain = Spec {
            periods: vec![],
            periodic: false,
            scale,
            robust: false,
            ets_season: None,
        };
        specs.push(plain.clone());
        if !fitting.is_empty() {
            for robust in if sel.robust {
                vec![false, true]
            } else {
                vec![false]
            } {
                for periodic in [false, true] {
                    let periods = fitting.clone();
                    specs.push(Spec {
                        periods,
                        periodic,
                        scale,
                        robust,
                        ets_season: None,
                    });
                }
            }
        }
        for &p in fitting.iter().filter(|&&p| p <= seasonal_ets::MAX_SEASON) {
            specs.push(Spec {
                ets_season: Some(p),
                ..plain.clone()
            });
        }
    }

    let mut candidates = Vec::new();
    if !too_long.is_empty() {
        candidates.push(CandidateScore {
            name: format!("augurs MSTL{too_long:?} + AutoETS"),
            smape: None,
            note: Some(format!(
                "skipped: history has {n} points, needs >= 2 full seasons ({} points)",
                2 * too_long.iter().min().copied().unwrap_or(0)
            )),
        });
    }
    for &p in &seasons {
        let label = format!("ETS(*,*,A)[{p}] (own implementation)");
        let why = if p > seasonal_ets::MAX_SEASON {
            format!(
                "skipped: season length {p} > {}, too many seasonal states to estimate \
                 (R's ets and statsforecast have the same limit)",
                seasonal_ets::MAX_SEASON
            )
        } else if n < 2 * p {
            format!(
                "skipped: history has {n} points, needs >= 2 full seasons ({} points)",
                2 * p
            )
        } else {
            continue;
        };
        candidates.push(CandidateScore {
            name: label,
            smape: None,
            note: Some(why),
        });
    }
    // Each candidate's full history chooses its ETS form (AutoETS / AICc) and gives its
    // forecast; its holdout folds refit that form only, so the folds score the forecast served.
    // (mean holdout sMAPE, full-history fit, index into `candidates`)
    let mut scored: Vec<(f64, Fitted, usize)> = Vec::new();
    // Random walk with drift, the simplest benchmark, on the same folds (first: it wins ties).
    if let Ok(full) = drift(history, h, level) {
        let s = (1..=folds)
            .rev()
            .map(|k| {
                let cut = n - k * holdout;
                drift(&history[..cut], holdout, level)
                    .map(|f| smape(&history[cut..cut + holdout], &f.point))
                    .unwrap_or(f64::INFINITY)
            })
            .sum::<f64>()
            / folds as f64;
        candidates.push(CandidateScore {
            name: full.method.clone(),
            smape: Some(s),
            note: None,
        });
        let fit = Fitted {
            name: full.method,
            form: None,
            point: full.point,
            lower: full.lower,
            upper: full.upper,
            note: None,
        };
        scored.push((s, fit, candidates.len() - 1));
    }
    'spec: for spec in &specs {
        let full = match run_candidate(spec, None, history, h, level) {
            Ok(fit) => fit,
            Err(e) => {
                candidates.push(CandidateScore {
                    name: spec.label(),
                    smape: None,
                    note: Some(format!("failed on the full history: {e}")),
                });
                continue;
            }
        };
        let mut total = 0.0;
        for k in (1..=folds).rev() {
            let cut = n - k * holdout;
            // A fold too short for the chosen form (more parameters than points) searches.
            let train = &history[..cut];
            let fit = run_candidate(spec, full.form.as_ref(), train, holdout, level)
                .or_else(|_| run_candidate(spec, None, train, holdout, level));
            match fit {
                Ok(fit) => total += smape(&history[cut..cut + holdout], &fit.point),
                Err(e) => {
                    candidates.push(CandidateScore {
                        name: full.name,
                        smape: None,
                        note: Some(format!("failed on holdout fold ending at point {cut}: {e}")),
                    });
                    continue 'spec;
                }
            }
        }
        let s = total / folds as f64;
        candidates.push(CandidateScore {
            name: full.name.clone(),
            smape: Some(s),
            note: full.note.clone(),
        });
        scored.push((s, full, candidates.len() - 1));
    }
    // Stable: the simpler (earlier) candidate wins ties.
    if let Some(best) = (0..scored.len()).min_by(|&a, &b| scored[a].0.total_cmp(&scored[b].0)) {
        let fit = scored.swap_remove(best).1;
        return Ok(Forecast {
            method: fit.name,
            point: fit.point,
            lower: fit.lower,
            upper: fit.upper,
            level,
            fallback: None,
            holdout,
            folds,
            candidates,
        });
    }
    let why = "no model candidate could be fitted on the full history and its holdout folds";
    Ok(fallback(
        history,
        h,
        level,
        why.into(),
        candidates,
        holdout,
        folds,
    ))
}

/// Checks the history, horizon and level of a method without seasons.
fn validate_plain(history: &[f64], horizon: usize, level: f64) -> Result<(), ForecastError> {
    validate(
        history,
        &ForecastOptions {
            horizon,
            season_lengths: vec![],
            level,
        },
    )
}

/// Drift forecast (random walk with drift, >= 3 points), the benchmark method of
/// `bench compare`; the same method and interval the model selection falls back to.
pub fn drift(history: &[f64], horizon: usize, level: f64) -> Result<Forecast, ForecastError> {
    validate_plain(history, horizon, level)?;
    let mut forecast = fallback(history, horizon, level, String::new(), vec![], 0, 0);
    forecast.fallback = None;
    Ok(forecast)
}

/// Seasonal naive forecast: each step repeats the value one season earlier (`season_length`
/// 1 is the naive forecast). Interval `±z·σ·sqrt(k + 1)`, `k` the completed seasons before the
/// step and `σ` the root mean square of the seasonal differences (Hyndman and Athanasopoulos,
/// *Forecasting: Principles and Practice*, 5.5). Needs more than one season of history.
pub fn seasonal_naive(
    history: &[f64],
    horizon: usize,
    season_length: usize,
    level: f64,
) -> Result<Forecast, ForecastError> {
    let m = season_length.max(1);
    validate_plain(history, horizon, level)?;
    if history.len() <= m {
        return Err(ForecastError::InvalidSeasonLength(m));
    }
    let n = history.len();
    let differences: Vec<f64> = (m..n).map(|t| history[t] - history[t - m]).collect();
    let sigma = (differences.iter().map(|d| d * d).sum::<f64>() / differences.len() as f64).sqrt();
    let z = normal_quantile(0.5 + level / 2.0);
    let point: Vec<f64> = (0..horizon).map(|s| history[n - m + s % m]).collect();
    let half: Vec<f64> = (0..horizon)
        .map(|s| z * sigma * ((s / m) as f64 + 1.0).sqrt())
        .collect();
    Ok(Forecast {
        method: if m == 1 {
            "naive (last value)".into()
        } else {
            format!("seasonal naive (m = {m})")
        },
        lower: point.iter().zip(&half).map(|(p, w)| p - w).collect(),
        upper: point.iter().zip(&half).map(|(p, w)| p + w).collect(),
        point,
        level,
        fallback: None,
        holdout: 0,
        folds: 0,
        candidates: vec![],
    })
}

/// Mean absolute scaled error: mean `|a - f|` over the mean absolute in-sample seasonal
/// difference of `history` (Hyndman and Koehler 2006); NaN when that scale is 0.
pub fn mase(history: &[f64], season_length: usize, actual: &[f64], predicted: &[f64]) -> f64 {
    let m = season_length.max(1);
    if history.len() <= m || actual.is_empty() {
        return f64::NAN;
    }
    let scale = (m..history.len())
        .map(|t| (history[t] - history[t - m]).abs())
        .sum::<f64>()
        / (history.len() - m) as f64;
    let error = actual
        .iter()
        .zip(predicted)
        .map(|(a, f)| (a - f).abs())
        .sum::<f64>()
        / actual.len() as f64;
    if scale > 0.0 {
        error / scale
    } else {
        f64::NAN
    }
}

/// Symmetric MAPE in percent: mean of `2|a - f| / (|a| + |f|)` (0 when both are 0).
pub fn smape(actual: &[f64], predicted: &[f64]) -> f64 {
    let terms: Vec<f64> = actual
        .iter()
        .zip(predicted)
        .map(|(a, f)| {
            let d = a.abs() + f.abs();
            if d == 0.0 {
                0.0
            } else {
                2.0 * (a - f).abs() / d
            }
        })
        .collect();
    if terms.is_empty() {
        return f64::NAN;
    }
    100.0 * terms.iter().sum::<f64>() / terms.len() as f64
}

/// MAPE in percent (NaN if any actual value is 0).
pub fn mape(actual: &[f64], predicted: &[f64]) -> f64 {
    let terms: Vec<f64> = actual
        .iter()
        .zip(predicted)
        .map(|(a, f)| ((a - f) / a).abs())
        .collect();
    if terms.is_empty() {
        return f64::NAN;
    }
    100.0 * terms.iter().sum::<f64>() / terms.len() as f64
}

fn validate(history: &[f64], o: &ForecastOptions) -> Result<(), ForecastError> {
    if history.is_empty() {
        return Err(ForecastError::EmptyHistory);
    }
    if let Some((index, &value)) = history.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ForecastError::NonFiniteHistory { index, value });
    }
    if o.horizon == 0 || o.horizon > MAX_HORIZON {
        return Err(ForecastError::InvalidHorizon {
            horizon: o.horizon,
            max: MAX_HORIZON,
        });
    }
    if let Some(&p) = o.season_lengths.iter().find(|&&p| p < 2) {
        return Err(ForecastError::InvalidSeasonLength(p));
    }
    if !(o.level > 0.0 && o.level < 1.0) {
        return Err(ForecastError::InvalidLevel(o.level));
    }
    Ok(())
}

/// Holdout = min(horizon, longest fitting season or ~20% of n), shrunk so the
/// training part keeps >= 2 full seasons (when possible) and >= MIN_TRAIN_POINTS.
fn holdout_size(n: usize, horizon: usize, fitting: &[usize]) -> usize {
    let base = match fitting.iter().max() {
        Some(&p) => p,
        None => (n as f64 * 0.2).ceil() as usize,
    };
    let mut hold = horizon.min(base).max(1);
    if let Some(&p) = fitting.iter().max().filter(|&&p| n > 2 * p) {
        hold = hold.min(n - 2 * p);
    }
    hold.min(n.saturating_sub(MIN_TRAIN_POINTS)).max(1)
}

/// Scale the candidate is fitted on (forecasts are back-transformed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    Raw,
    /// `ln`, back-transformed with `exp`.
    Log,
}

/// A model candidate: MSTL periods (empty = plain AutoETS), seasonal window
/// (stlrs default, or periodic = one fixed seasonal shape), robust STL, scale;
/// or, with `ets_season`, our own seasonal ETS (other fields but `scale` unused).
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) periods: Vec<usize>,
    pub(crate) periodic: bool,
    pub(crate) scale: Scale,
    pub(crate) robust: bool,
    pub(crate) ets_season: Option<usize>,
}

impl Spec {
    fn label(&self) -> String {
        match self.ets_season {
            Some(p) => self.name(&format!("ETS(*,*,A)[{p}]")),
            None => self.name("AutoETS"),
        }
    }

    fn name(&self, ets: &str) -> String {
        if self.ets_season.is_some() {
            let mut s = format!("{ets} (own implementation)");
            if self.scale == Scale::Log {
                s.push_str(" on log scale");
            }
            return s;
        }
        let mut s = String::new();
        if !self.periods.is_empty() {
            s.push_str(&format!("augurs MSTL{:?}", self.periods));
            s.push_str(if self.robust { " robust" } else { "" });
            s.push_str(if self.periodic { " periodic + " } else { " + " });
        }
        s.push_str(ets);
        match self.scale {
            Scale::Raw => {}
            Scale::Log => s.push_str(" on log scale"),
        }
        s
    }
}

/// The ETS form a fit chose, so that it can be refitted on other data without a new search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EtsForm {
    /// Non-seasonal ETS with additive errors ([`additive_ets`], augurs' AutoETS ported).
    Additive(additive_ets::Form),
    /// Our seasonal ETS.
    Own(seasonal_ets::EtsModel),
}

pub(crate) struct Fitted {
    pub(crate) name: String,
    /// The form chosen (or given).
    pub(crate) form: Option<EtsForm>,
    pub(crate) point: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// Fit details worth reporting (AICc of each seasonal ETS form).
    note: Option<String>,
}

/// Points and interval bounds of length `h`, finite, with lower <= point <= upper.
fn check_forecast(h: usize, point: &[f64], lower: &[f64], upper: &[f64]) -> Result<(), String> {
    let ok =
        point.len() == h
            && lower.len() == h
            && upper.len() == h
            && point.iter().zip(lower).zip(upper).all(|((p, l), u)| {
                p.is_finite() && l.is_finite() && u.is_finite() && l <= p && p <= u
            });
    if ok {
        Ok(())
    } else {
        Err("forecast or interval not finite / not ordered".into())
    }
}

/// Our seasonal ETS (AICc choice among the additive-season forms) on `spec.scale`.
fn run_own_ets(
    spec: &Spec,
    m: usize,
    form: Option<seasonal_ets::EtsModel>,
    y: &[f64],
    h: usize,
    level: f64,
) -> Result<Fitted, String> {
    let (z, multiplicative_errors): (Cow<'_, [f64]>, bool) = match spec.scale {
        Scale::Raw => (Cow::Borrowed(y), true),
        Scale::Log => (Cow::Owned(y.iter().map(|v| v.ln()).collect()), false),
    };
    let (best, note) = match form {
        Some(model) => (
            seasonal_ets::fit(&z, m, model).map_err(|e| e.to_string())?,
            None,
        ),
        None => {
            let auto =
                seasonal_ets::auto_fit(&z, m, multiplicative_errors).map_err(|e| e.to_string())?;
            let note = auto.summary();
            (auto.best, Some(note))
        }
    };
    let (mut point, mut lower, mut upper) = best.forecast(h, level);
    if spec.scale == Scale::Log {
        for v in point
            .iter_mut()
            .chain(lower.iter_mut())
            .chain(upper.iter_mut())
        {
            *v = v.exp();
        }
    }
    check_forecast(h, &point, &lower, &upper)?;
    Ok(Fitted {
        name: spec.name(&best.name()),
        form: Some(EtsForm::Own(best.model)),
        point,
        lower,
        upper,
        note,
    })
}

/// Fit `spec` on `y` (its ETS form chosen by AutoETS / AICc, or `form` when given) and
/// forecast `h` steps; panics inside augurs become errors.
pub(crate) fn run_candidate(
    spec: &Spec,
    form: Option<&EtsForm>,
    y: &[f64],
    h: usize,
    level: f64,
) -> Result<Fitted, String> {
    if let Some(m) = spec.ets_season {
        let form = match form {
            Some(EtsForm::Own(model)) => Some(*model),
            Some(other) => return Err(format!("{other:?} is not a seasonal ETS form")),
            None => None,
        };
        return run_own_ets(spec, m, form, y, h, level);
    }
    let forms = match form {
        Some(EtsForm::Additive(form)) => vec![*form],
        Some(other) => return Err(format!("{other:?} is not an AutoETS form")),
        // Additive errors: the log scale stands in for multiplicative ones.
        None => additive_ets::Form::SEARCH.to_vec(),
    };
    let chosen = Arc::new(Mutex::new(None::<(String, EtsForm)>));
    let ets = NamedAutoEts {
        forms,
        chosen: Arc::clone(&chosen),
    };
    let transformers: Vec<Box<dyn Transformer>> = match spec.scale {
        Scale::Raw => vec![],
        Scale::Log => vec![Log::new().boxed()],
    };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<augurs::Forecast, String> {
        if spec.periods.is_empty() {
            let mut f = Forecaster::new(ets).with_transformers(transformers);
            f.fit(y).map_err(|e| e.to_string())?;
            f.predict(h, level).map_err(|e| e.to_string())
        } else {
            let mut model = MSTLModel::new(spec.periods.clone(), ets);
            if spec.periodic || spec.robust {
                let mut params = MstlParams::new();
                if spec.periodic {
                    // R's s.window = "periodic": a seasonal window spanning the whole series.
                    params.seasonal_lengths(&vec![10 * y.len() + 1; spec.periods.len()]);
                }
                if spec.robust {
                    let mut stl = augurs::mstl::stlrs::StlParams::new();
                    stl.robust(true);
                    params.stl_params(stl);
                }
                model = model.mstl_params(params);
            }
            let mut f = Forecaster::new(model).with_transformers(transformers);
            f.fit(y).map_err(|e| e.to_string())?;
            f.predict(h, level).map_err(|e| e.to_string())
        }
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("augurs panicked: {msg}")
    })??;
    let (ets_name, form) = chosen
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .ok_or("AutoETS did not report its chosen model")?;
    let intervals = result.intervals.ok_or("augurs returned no intervals")?;
    let (point, lower, upper) = (result.point, intervals.lower, intervals.upper);
    check_forecast(h, &point, &lower, &upper)?;
    Ok(Fitted {
        name: spec.name(&ets_name),
        form: Some(form),
        point,
        lower,
        upper,
        note: None,
    })
}

/// Non-seasonal additive-error AutoETS over `forms` (all three by default, AICc selection)
/// that records which model it chose, e.g. `AutoETS(A,Ad,N)`, and its form.
#[derive(Debug, Clone)]
struct NamedAutoEts {
    forms: Vec<additive_ets::Form>,
    chosen: Arc<Mutex<Option<(String, EtsForm)>>>,
}

impl NamedAutoEts {
    fn fit_named(&self, y: &[f64]) -> Result<FittedAdditiveEts, additive_ets::AdditiveEtsError> {
        let fitted = additive_ets::auto_fit(y, &self.forms)?;
        if let Ok(mut g) = self.chosen.lock() {
            *g = Some((fitted.form.to_string(), EtsForm::Additive(fitted.form)));
        }
        Ok(FittedAdditiveEts(fitted))
    }
}

impl augurs::ModelError for additive_ets::AdditiveEtsError {}

impl Fit for NamedAutoEts {
    type Fitted = FittedAdditiveEts;
    type Error = additive_ets::AdditiveEtsError;
    fn fit(&self, y: &[f64]) -> Result<FittedAdditiveEts, Self::Error> {
        self.fit_named(y)
    }
}

impl TrendModel for NamedAutoEts {
    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed("AutoETS")
    }

    fn fit(
        &self,
        y: &[f64],
    ) -> Result<Box<dyn FittedTrendModel + Sync + Send>, Box<dyn std::error::Error + Send + Sync>>
    {
        Ok(Box::new(self.fit_named(y)?))
    }
}

/// A fitted [`additive_ets`] model behind augurs' prediction traits (for its `Forecaster`
/// transforms and MSTL's trend).
#[derive(Debug)]
struct FittedAdditiveEts(additive_ets::FittedEts);

impl FittedAdditiveEts {
    /// The standard normal quantile of a two-sided interval at `level` (0 without one).
    fn z(level: Option<f64>) -> f64 {
        normal_quantile(0.5 + level.unwrap_or(0.0) / 2.0)
    }

    fn store(prediction: additive_ets::Prediction, level: Option<f64>, out: &mut augurs::Forecast) {
        out.point = prediction.point;
        out.intervals = level.map(|level| ForecastIntervals {
            level,
            lower: prediction.lower,
            upper: prediction.upper,
        });
    }
}

impl Predict for FittedAdditiveEts {
    type Error = additive_ets::AdditiveEtsError;

    fn predict_in_sample_inplace(
        &self,
        level: Option<f64>,
        forecast: &mut augurs::Forecast,
    ) -> Result<(), Self::Error> {
        Self::store(self.0.predict_in_sample(Self::z(level)), level, forecast);
        Ok(())
    }

    fn predict_inplace(
        &self,
        horizon: usize,
        level: Option<f64>,
        forecast: &mut augurs::Forecast,
    ) -> Result<(), Self::Error> {
        if horizon > 0 {
            Self::store(self.0.predict(horizon, Self::z(level)), level, forecast);
        }
        Ok(())
    }

    fn training_data_size(&self) -> usize {
        self.0.training_size()
    }
}

impl FittedTrendModel for FittedAdditiveEts {
    fn predict_inplace(
        &self,
        horizon: usize,
        level: Option<f64>,
        forecast: &mut augurs::Forecast,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(Predict::predict_inplace(self, horizon, level, forecast)?)
    }

    fn predict_in_sample_inplace(
        &self,
        level: Option<f64>,
        forecast: &mut augurs::Forecast,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(Predict::predict_in_sample_inplace(self, level, forecast)?)
    }

    fn training_data_size(&self) -> Option<usize> {
        Some(self.0.training_size())
    }
}

/// Drift (>= 3 points) or naive (1-2 points) forecast, labelled with `why`.
///
/// Drift interval: `±z·σ·sqrt(h·(1 + h/T))` with σ the std. dev. of the T
/// one-step differences around the drift (the sqrt(h) random-walk widening
/// plus drift-estimation error). Naive with < 3 points has no estimable
/// spread, so its interval is unbounded (±∞).
fn fallback(
    y: &[f64],
    h: usize,
    level: f64,
    why: String,
    candidates: Vec<CandidateScore>,
    holdout: usize,
    folds: usize,
) -> Forecast {
    let n = y.len();
    let last = y[n - 1];
    let steps = (1..=h).map(|s| s as f64);
    if n >= 3 {
        let t = (n - 1) as f64;
        let slope = (last - y[0]) / t;
        let ss: f64 = y.windows(2).map(|w| (w[1] - w[0] - slope).powi(2)).sum();
        let sigma = (ss / (t - 1.0)).sqrt();
        let z = normal_quantile(0.5 + level / 2.0);
        let point: Vec<f64> = steps.clone().map(|s| last + s * slope).collect();
        let half: Vec<f64> = steps
            .map(|s| z * sigma * (s * (1.0 + s / t)).sqrt())
            .collect();
        Forecast {
            method: "drift (random walk with drift)".into(),
            lower: point.iter().zip(&half).map(|(p, w)| p - w).collect(),
            upper: point.iter().zip(&half).map(|(p, w)| p + w).collect(),
            point,
            level,
            fallback: Some(format!(
                "{why}; used drift (last value + mean historical change)"
            )),
            holdout,
            folds,
            candidates,
        }
    } else {
        Forecast {
            method: "naive (last value)".into(),
            point: vec![last; h],
            lower: vec![f64::NEG_INFINITY; h],
            upper: vec![f64::INFINITY; h],
            level,
            fallback: Some(format!(
                "{why}; used naive (last value). With {n} point(s) no spread can be estimated, \
                 so the interval is unbounded (-inf, +inf)"
            )),
            holdout,
            folds,
            candidates,
        }
    }
}

/// Standard normal quantile (Acklam's rational approximation, |rel err| < 1.2e-9).
#[allow(clippy::excessive_precision)]
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Sampling frequency detected from date spacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frequency {
    /// ~1 day apart.
    Daily,
    /// ~7 days apart.
    Weekly,
    /// 28-31 days apart.
    Monthly,
    /// 89-92 days apart.
    Quarterly,
    /// 365-366 days apart.
    Yearly,
    /// Anything else; holds the median spacing in days.
    Irregular(f64),
}

/// Detect the sampling frequency from ISO dates (`YYYY-MM-DD` or `YYYY-MM`,
/// strictly increasing) by their median spacing.
pub fn detect_frequency<S: AsRef<str>>(dates: &[S]) -> Result<Frequency, ForecastError> {
    if dates.len() < 2 {
        return Err(ForecastError::InvalidDates(format!(
            "need at least 2 dates to detect spacing, got {}",
            dates.len()
        )));
    }
    let days = dates
        .iter()
        .enumerate()
        .map(|(i, d)| {
            parse_date(d.as_ref()).ok_or_else(|| {
                ForecastError::InvalidDates(format!(
                    "dates[{i}] = {:?} is not a valid YYYY-MM-DD or YYYY-MM date",
                    d.as_ref()
                ))
            })
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let mut gaps = Vec::with_capacity(days.len() - 1);
    for (i, w) in days.windows(2).enumerate() {
        if w[1] <= w[0] {
            return Err(ForecastError::InvalidDates(format!(
                "dates must be strictly increasing (dates[{}] <= dates[{i}])",
                i + 1
            )));
        }
        gaps.push(w[1] - w[0]);
    }
    gaps.sort_unstable();
    let m = gaps.len();
    let median = if m % 2 == 1 {
        gaps[m / 2] as f64
    } else {
        (gaps[m / 2 - 1] + gaps[m / 2]) as f64 / 2.0
    };
    Ok(match median {
        1.0 => Frequency::Daily,
        d if (6.0..=8.0).contains(&d) => Frequency::Weekly,
        d if (28.0..=31.0).contains(&d) => Frequency::Monthly,
        d if (89.0..=92.0).contains(&d) => Frequency::Quarterly,
        d if (365.0..=366.0).contains(&d) => Frequency::Yearly,
        d => Frequency::Irregular(d),
    })
}

/// Default season lengths for a frequency and history length: daily -> [7]
/// ([7, 365] with >= 730 points), weekly -> [52], monthly -> [12],
/// quarterly -> [4], yearly / irregular -> [].
pub fn default_season_lengths(freq: Frequency, n_points: usize) -> Vec<usize> {
    match freq {
        Frequency::Daily if n_points >= 2 * 365 => vec![7, 365],
        Frequency::Daily => vec![7],
        Frequency::Weekly => vec![52],
        Frequency::Monthly => vec![12],
        Frequency::Quarterly => vec![4],
        Frequency::Yearly | Frequency::Irregular(_) => vec![],
    }
}

/// [`detect_frequency`] then [`default_season_lengths`].
pub fn infer_season_lengths<S: AsRef<str>>(dates: &[S]) -> Result<Vec<usize>, ForecastError> {
    Ok(default_season_lengths(
        detect_frequency(dates)?,
        dates.len(),
    ))
}

/// Days since 1970-01-01 for `YYYY-MM-DD` or `YYYY-MM` (day 1).
/// Days in month `m` (1-12) of year `y` (proleptic Gregorian).
pub(crate) fn days_in_month(y: i64, m: i64) -> i64 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn parse_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let num = |p: &str, len: usize| -> Option<i64> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    let (y, m, d) = match parts.as_slice() {
        [y, m] => (num(y, 4)?, num(m, 2)?, 1),
        [y, m, d] => (num(y, 4)?, num(m, 2)?, num(d, 2)?),
        _ => return None,
    };
    if !(1..=12).contains(&m) {
        return None;
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil((y, m, d)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil((y, m, d): (i64, i64, i64)) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
