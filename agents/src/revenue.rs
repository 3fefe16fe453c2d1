//! `POST /revenue/forecast`: the caller's revenue history forecast ahead
//! ([`mesh_numeric::forecast`]: AutoETS ported from augurs, augurs MSTL, seasonal ETS, chosen by rolling-origin
//! holdout sMAPE, with prediction intervals; a labelled drift or naive method when the history
//! is too short).
//!
//! The period comes from `dates` when given (daily, weekly, monthly, quarterly, yearly);
//! without dates the values are taken as monthly. `horizon` defaults to the periods in
//! `period_days` (90 by default). `projected_revenue` is the sum of the point forecasts over
//! the horizon; `growth_rate` (percent) compares it with the sum of the last `horizon`
//! observed periods (or the last value times the horizon, for a shorter history).
//! `confidence` is the level of the prediction intervals.

use mesh_numeric::forecast::{
    days_from_civil, default_season_lengths, detect_frequency, forecast, ForecastError,
    ForecastOptions, Frequency,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{now_iso8601, Agent, AgentError, AgentKind};

/// Most history points.
pub const MAX_HISTORY: usize = 20_000;

/// The request.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    /// Revenue per period, oldest first.
    #[serde(default)]
    pub history: Option<Vec<f64>>,
    /// Optional dates of the values (`YYYY-MM-DD` or `YYYY-MM`), one per value.
    #[serde(default)]
    pub dates: Option<Vec<String>>,
    /// Season length in periods (e.g. 12 for monthly data); default from the dates' frequency.
    #[serde(default)]
    pub season_length: Option<usize>,
    /// Periods to forecast; default from `period_days`.
    #[serde(default)]
    pub horizon: Option<usize>,
    /// Days to forecast when `horizon` is absent (default 90).
    #[serde(default)]
    pub period_days: Option<u32>,
    /// Echoed (the prototype's field); the history's last value is reported otherwise.
    #[serde(default)]
    pub current_revenue: Option<f64>,
    /// Level of the prediction intervals (default 0.95).
    #[serde(default)]
    pub level: Option<f64>,
}

/// One forecast period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeriodForecast {
    /// The period's date (from the caller's dates) or `t+k`.
    pub month: String,
    /// 1 for the first forecast period.
    pub period: usize,
    /// Point forecast.
    pub revenue: f64,
    pub lower_bound: f64,
    pub upper_bound: f64,
}

/// A candidate model and its holdout error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Candidate {
    pub name: String,
    pub smape: Option<f64>,
    pub note: Option<String>,
}

/// The forecast.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastResponse {
    pub period_days: u32,
    /// Forecast periods (months for monthly data).
    pub forecast_months: usize,
    /// daily, weekly, monthly, quarterly, yearly or monthly (assumed, no dates).
    pub frequency: String,
    pub season_lengths: Vec<usize>,
    pub current_revenue: f64,
    pub projected_revenue: f64,
    pub growth_rate: f64,
    /// Level of the intervals.
    pub confidence: f64,
    pub monthly_forecast: Vec<PeriodForecast>,
    /// Why a simple method was used, when it was.
    pub fallback: Option<String>,
    /// Every candidate tried, with its holdout sMAPE (percent).
    pub candidates: Vec<Candidate>,
    pub model_used: String,
    pub timestamp: String,
}

/// The revenue-forecasting agent.
#[derive(Debug, Default)]
pub struct RevenueAgent;

impl crate::Answer for ForecastResponse {
    fn model_used(&self) -> &str {
        &self.model_used
    }
}

impl Agent for RevenueAgent {
    type Request = ForecastRequest;
    type Response = ForecastResponse;
    const KIND: AgentKind = AgentKind::RevenueForecasting;

    fn model_used(&self) -> String {
        "revenue-forecast@2 (AutoETS ported from augurs, augurs MSTL, seasonal ETS)".into()
    }

    async fn handle(&self, request: ForecastRequest) -> Result<ForecastResponse, AgentError> {
        tokio::task::spawn_blocking(move || forecast_revenue(&request))
            .await
            .map_err(|e| AgentError::Unavailable(format!("the forecaster stopped: {e}")))?
    }
}

fn frequency_name(f: Frequency) -> (&'static str, f64) {
    match f {
        Frequency::Daily => ("daily", 1.0),
        Frequency::Weekly => ("weekly", 7.0),
        Frequency::Monthly => ("monthly", 30.4375),
        Frequency::Quarterly => ("quarterly", 91.3125),
        Frequency::Yearly => ("yearly", 365.25),
        Frequency::Irregular(days) => ("irregular", days),
    }
}

/// Forecasts one request.
pub fn forecast_revenue(request: &ForecastRequest) -> Result<ForecastResponse, AgentError> {
    let history = request.history.as_ref().ok_or_else(|| {
        AgentError::invalid(
            "history",
            "send the revenue `history` (oldest first); nothing is forecast from a single current value",
        )
    })?;
    if history.len() > MAX_HISTORY {
        return Err(AgentError::invalid(
            "history",
            format!("at most {MAX_HISTORY} values"),
        ));
    }
    let invalid = |e: ForecastError| AgentError::invalid(e.field(), e.to_string());
    let frequency = match &request.dates {
        Some(dates) if dates.len() != history.len() => {
            return Err(AgentError::invalid(
                "dates",
                format!("holds {} dates for {} values", dates.len(), history.len()),
            ))
        }
        Some(dates) => Some(detect_frequency(dates).map_err(invalid)?),
        None => None,
    };
    let (frequency_label, period_len_days) = match frequency {
        Some(f) => frequency_name(f),
        None => ("monthly (assumed, no dates)", 30.4375),
    };
    let period_days = request.period_days.unwrap_or(90);
    if period_days == 0 {
        return Err(AgentError::invalid("period_days", "must be at least 1"));
    }
    let horizon = request
        .horizon
        .unwrap_or_else(|| ((period_days as f64 / period_len_days).ceil() as usize).max(1));
    let season_lengths = match request.season_length {
        Some(s) => vec![s],
        None => default_season_lengths(frequency.unwrap_or(Frequency::Monthly), history.len()),
    };
    let level = request.level.unwrap_or(0.95);
    let result = forecast(
        history,
        &ForecastOptions {
            horizon,
            season_lengths: season_lengths.clone(),
            level,
        },
    )
    .map_err(invalid)?;
    let labels = period_labels(request.dates.as_deref(), frequency, horizon);
    let projected: f64 = result.point.iter().sum();
    let last = *history.last().expect("forecast rejects an empty history");
    let recent: f64 = if history.len() >= horizon {
        history[history.len() - horizon..].iter().sum()
    } else {
        last * horizon as f64
    };
    Ok(ForecastResponse {
        period_days,
        forecast_months: horizon,
        frequency: frequency_label.into(),
        season_lengths,
        current_revenue: request.current_revenue.unwrap_or(last),
        projected_revenue: projected,
        growth_rate: if recent != 0.0 {
            100.0 * (projected / recent - 1.0)
        } else {
            0.0
        },
        confidence: result.level,
        monthly_forecast: (0..horizon)
            .map(|k| PeriodForecast {
                month: labels[k].clone(),
                period: k + 1,
                revenue: result.point[k],
                lower_bound: result.lower[k],
                upper_bound: result.upper[k],
            })
            .collect(),
        fallback: result.fallback.clone(),
        candidates: result
            .candidates
            .iter()
            .map(|c| Candidate {
                name: c.name.clone(),
                smape: c.smape,
                note: c.note.clone(),
            })
            .collect(),
        model_used: result.method.clone(),
        timestamp: now_iso8601(),
    })
}

/// Labels of the forecast periods: dates continuing the caller's, else `t+k`.
fn period_labels(
    dates: Option<&[String]>,
    frequency: Option<Frequency>,
    horizon: usize,
) -> Vec<String> {
    let fallback = || (1..=horizon).map(|k| format!("t+{k}")).collect();
    let (Some(dates), Some(frequency)) = (dates, frequency) else {
        return fallback();
    };
    let Some(last) = dates.last().and_then(|d| parse_date(d)) else {
        return fallback();
    };
    let month_only = dates.last().is_some_and(|d| d.trim().len() == 7);
    (1..=horizon as i64)
        .map(|k| {
            let (y, m, d) = match frequency {
                Frequency::Monthly => add_months(last, k),
                Frequency::Quarterly => add_months(last, 3 * k),
                Frequency::Yearly => add_months(last, 12 * k),
                Frequency::Weekly => civil_from_days(days_from_civil(last) + 7 * k),
                Frequency::Daily => civil_from_days(days_from_civil(last) + k),
                Frequency::Irregular(_) => return format!("t+{k}"),
            };
            if month_only {
                format!("{y:04}-{m:02}")
            } else {
                format!("{y:04}-{m:02}-{d:02}")
            }
        })
        .collect()
}

fn parse_date(s: &str) -> Option<(i64, i64, i64)> {
    let mut parts = s.trim().split('-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next().map_or(Some(1), |d| d.parse().ok())?;
    Some((y, m, d))
}

fn add_months((y, m, d): (i64, i64, i64), k: i64) -> (i64, i64, i64) {
    let total = y * 12 + (m - 1) + k;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let days_in_month = days_from_civil((y + m / 12, m % 12 + 1, 1)) - days_from_civil((y, m, 1));
    (y, m, d.min(days_in_month))
}

/// The date `z` days after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_continue_and_horizon_follows_period_days() {
        assert_eq!(days_from_civil((1970, 1, 1)), 0);
        assert_eq!(
            civil_from_days(days_from_civil((2024, 2, 28)) + 1),
            (2024, 2, 29)
        );
        assert_eq!(add_months((2024, 1, 31), 1), (2024, 2, 29));
        // 36 months of a trend with a yearly season.
        let history: Vec<f64> = (0..36)
            .map(|t| {
                1000.0
                    + 10.0 * t as f64
                    + 50.0 * (2.0 * std::f64::consts::PI * t as f64 / 12.0).sin()
            })
            .collect();
        let dates: Vec<String> = (0..36)
            .map(|t| format!("{}-{:02}", 2022 + t / 12, t % 12 + 1))
            .collect();
        let r = forecast_revenue(&ForecastRequest {
            history: Some(history),
            dates: Some(dates),
            ..Default::default()
        })
        .unwrap();
        // 90 days of monthly data: 3 periods, labelled from 2025-01.
        assert_eq!(r.forecast_months, 3);
        assert_eq!(r.frequency, "monthly");
        let months: Vec<&str> = r
            .monthly_forecast
            .iter()
            .map(|m| m.month.as_str())
            .collect();
        assert_eq!(months, vec!["2025-01", "2025-02", "2025-03"]);
        // The true continuation: 1000 + 10 t + 50 sin(2 pi t / 12) at t = 36, 37, 38.
        for (k, m) in r.monthly_forecast.iter().enumerate() {
            let t = (36 + k) as f64;
            let truth = 1000.0 + 10.0 * t + 50.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin();
            assert!(
                (m.revenue - truth).abs() / truth < 0.01,
                "{} vs {truth}",
                m.revenue
            );
            assert!(m.lower_bound <= m.revenue && m.revenue <= m.upper_bound);
        }
        assert!(r.fallback.is_none());
    }

    #[test]
    fn a_short_history_is_labelled_and_a_missing_one_refused() {
        let r = forecast_revenue(&ForecastRequest {
            history: Some(vec![100.0, 110.0, 120.0, 130.0]),
            horizon: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert!(r.fallback.is_some());
        assert!(
            (r.monthly_forecast[0].revenue - 140.0).abs() < 1e-9,
            "drift continues the line"
        );
        match forecast_revenue(&ForecastRequest::default()) {
            Err(AgentError::Invalid { field, .. }) => assert_eq!(field, "history"),
            other => panic!("{other:?}"),
        }
    }
}
