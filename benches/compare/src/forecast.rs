//! The forecast task of `bench compare`: every series is cut into history and a held-out end,
//! and each method forecasts the held-out end from the history alone.
//!
//! Methods: the revenue agent's forecaster (model selection over AutoETS (ported from augurs) / augurs MSTL and the
//! seasonal ETS), seasonal naive and drift. Figures are pooled over every held-out point of
//! every series: sMAPE, MAPE, MASE (scaled by the series' in-sample seasonal naive error) and
//! the share of actual values inside the prediction interval, each with a 95% bootstrap
//! interval over the held-out points. The fan chart draws each series' recent history, its
//! held-out values and every method's forecast with its interval band.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use mesh_numeric::forecast::{
    drift, forecast, mape, mase, seasonal_naive, smape, Forecast, ForecastOptions,
};
use serde::Serialize;
use serde_json::Value;

use super::{bootstrap, escape, interval, table_header, CompareOptions, Estimate, COLOURS};

/// Interval coverage every method is asked for.
pub const LEVEL: f64 = 0.95;

/// One series to forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub name: String,
    pub values: Vec<f64>,
    /// Seasonal period in steps; 0 or 1 is non-seasonal.
    pub season_length: usize,
    /// Held-out points at the end.
    pub horizon: usize,
}

/// One method's figures over all series.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastModelReport {
    pub name: String,
    pub model_used: String,
    pub kind: &'static str,
    /// Percent.
    pub smape: Estimate,
    /// Percent (NaN when an actual value is 0).
    pub mape: Estimate,
    pub mase: Estimate,
    /// Share of held-out values inside the [`LEVEL`] interval.
    pub interval_coverage: Estimate,
    /// Fit + forecast time per series.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// Series per second.
    pub throughput_per_s: f64,
    /// Per 1,000 series.
    pub cost_per_1000_usd: f64,
}

/// One method's forecast of one series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesForecast {
    pub model_used: String,
    /// The method actually used (the agent names the model it selected).
    pub method: String,
    pub point: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub smape: f64,
}

/// A series with the held-out values and every method's forecast of them.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesResult {
    pub name: String,
    pub season_length: usize,
    pub history: Vec<f64>,
    pub actual: Vec<f64>,
    pub forecasts: Vec<SeriesForecast>,
}

/// The forecast comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastComparison {
    pub level: f64,
    pub models: Vec<ForecastModelReport>,
    pub series: Vec<SeriesResult>,
}

/// Reads series: the index the forecast benchmark writes (`{"series": [{"name", "file",
/// "holdout", "season_length"}]}`, files with a `value` header then one value per line), or
/// JSON lines `{"name", "values": [...], "season_length"?, "horizon"?}`. Without a horizon the
/// last season (or the last fifth, at most 12 points, of a non-seasonal series) is held out.
pub fn read_series(path: &Path) -> anyhow::Result<Vec<SeriesSpec>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let numbers = |v: &Value, what: &str| -> anyhow::Result<Vec<f64>> {
        let values: Vec<f64> = serde_json::from_value(v.clone())
            .with_context(|| format!("{what}: `values` must be an array of numbers"))?;
        anyhow::ensure!(
            values.iter().all(|x| x.is_finite()),
            "{what}: every value must be finite"
        );
        Ok(values)
    };
    let mut specs = vec![];
    let mut push = |name: String, values: Vec<f64>, season: usize, horizon: Option<usize>| {
        let horizon = horizon.unwrap_or(if season >= 2 {
            season
        } else {
            (values.len() / 5).clamp(1, 12)
        });
        anyhow::ensure!(
            horizon >= 1 && values.len() >= horizon + 3,
            "series `{name}`: {} values leave fewer than 3 for history before a {horizon}-point holdout",
            values.len()
        );
        specs.push(SeriesSpec {
            name,
            values,
            season_length: season,
            horizon,
        });
        Ok(())
    };
    let as_usize = |v: &Value| v.as_u64().map(|n| n as usize);
    match serde_json::from_str::<Value>(&content) {
        Ok(index) if index.get("series").is_some_and(Value::is_array) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            for s in index["series"].as_array().into_iter().flatten() {
                let name = s["name"].as_str().context("a series needs a `name`")?;
                let file = dir.join(s["file"].as_str().context("a series needs a `file`")?);
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let values = text
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| {
                        l.trim()
                            .parse::<f64>()
                            .with_context(|| format!("{}: `{l}` is not a number", file.display()))
                    })
                    .collect::<anyhow::Result<Vec<f64>>>()?;
                push(
                    name.to_string(),
                    values,
                    as_usize(&s["season_length"]).unwrap_or(0),
                    as_usize(&s["holdout"]),
                )?;
            }
        }
        _ => {
            for (line, v) in super::json_lines(&content)? {
                let values = numbers(&v["values"], &format!("line {line}"))?;
                push(
                    v["name"]
                        .as_str()
                        .map_or_else(|| format!("series {line}"), str::to_string),
                    values,
                    as_usize(&v["season_length"]).unwrap_or(0),
                    as_usize(&v["horizon"]),
                )?;
            }
        }
    }
    anyhow::ensure!(!specs.is_empty(), "{} holds no series", path.display());
    Ok(specs)
}

/// Fits a method on a series' history and forecasts its held-out end.
type RunMethod = Box<dyn Fn(&SeriesSpec, &[f64]) -> anyhow::Result<Forecast>>;

/// A forecasting method as `bench compare` runs it.
struct Method {
    name: String,
    model_used: String,
    kind: &'static str,
    run: RunMethod,
}

fn methods() -> Vec<Method> {
    use mesh_agents::Agent;
    let agent_model = mesh_agents::revenue::RevenueAgent.model_used();
    vec![
        Method {
            name: "the revenue agent's forecaster (model selection by rolling-origin sMAPE over AutoETS (ported from augurs) / augurs MSTL and seasonal ETS)".into(),
            model_used: agent_model,
            kind: "local model",
            run: Box::new(|spec, history| {
                Ok(forecast(
                    history,
                    &ForecastOptions {
                        horizon: spec.horizon,
                        season_lengths: if spec.season_length >= 2 {
                            vec![spec.season_length]
                        } else {
                            vec![]
                        },
                        level: LEVEL,
                    },
                )?)
            }),
        },
        Method {
            name: "seasonal naive (the value one season earlier; naive for non-seasonal series)"
                .into(),
            model_used: "seasonal-naive".into(),
            kind: "baseline",
            run: Box::new(|spec, history| {
                Ok(seasonal_naive(
                    history,
                    spec.horizon,
                    spec.season_length,
                    LEVEL,
                )?)
            }),
        },
        Method {
            name: "drift (random walk with drift)".into(),
            model_used: "drift".into(),
            kind: "baseline",
            run: Box::new(|spec, history| Ok(drift(history, spec.horizon, LEVEL)?)),
        },
    ]
}

/// Runs every method on every series.
pub fn compare(
    options: &CompareOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ForecastComparison> {
    let specs = read_series(&options.data)?;
    let mut series: Vec<SeriesResult> = specs
        .iter()
        .map(|s| {
            let (history, actual) = s.values.split_at(s.values.len() - s.horizon);
            SeriesResult {
                name: s.name.clone(),
                season_length: s.season_length,
                history: history.to_vec(),
                actual: actual.to_vec(),
                forecasts: vec![],
            }
        })
        .collect();
    let mut models = vec![];
    for method in methods() {
        progress.set_message(format!("{} on {} series", method.model_used, specs.len()));
        // Per held-out point: sMAPE, APE, scaled error, inside the interval.
        let mut terms: Vec<[f64; 4]> = vec![];
        let mut times: Vec<Duration> = vec![];
        for (spec, result) in specs.iter().zip(&mut series) {
            let started = Instant::now();
            let f = (method.run)(spec, &result.history)
                .with_context(|| format!("{} on series `{}`", method.model_used, spec.name))?;
            times.push(started.elapsed());
            let m = spec.season_length.max(1);
            for (step, a) in result.actual.iter().enumerate() {
                let p = &f.point[step..=step];
                terms.push([
                    smape(&[*a], p),
                    mape(&[*a], p),
                    mase(&result.history, m, &[*a], p),
                    f64::from(u8::from(f.lower[step] <= *a && *a <= f.upper[step])),
                ]);
            }
            result.forecasts.push(SeriesForecast {
                model_used: method.model_used.clone(),
                method: f.method.clone(),
                smape: smape(&result.actual, &f.point),
                point: f.point,
                lower: f.lower,
                upper: f.upper,
            });
        }
        let mean = |rows: &[usize]| -> [f64; 4] {
            let mut sums = [0.0; 4];
            for &i in rows {
                for (k, v) in terms[i].iter().enumerate() {
                    sums[k] += v;
                }
            }
            sums.map(|s| s / rows.len().max(1) as f64)
        };
        let [smape, mape, mase, coverage] = bootstrap(terms.len(), options, mean);
        let total: Duration = times.iter().sum();
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        let per_series = total.as_secs_f64() / times.len() as f64;
        models.push(ForecastModelReport {
            name: method.name,
            model_used: method.model_used,
            kind: method.kind,
            smape,
            mape,
            mase,
            interval_coverage: coverage,
            latency_p50_ms: at(0.5).as_secs_f64() * 1e3,
            latency_p95_ms: at(0.95).as_secs_f64() * 1e3,
            throughput_per_s: if per_series > 0.0 {
                1.0 / per_series
            } else {
                0.0
            },
            cost_per_1000_usd: super::cost_per_1000(per_series),
        });
    }
    Ok(ForecastComparison {
        level: LEVEL,
        models,
        series,
    })
}

/// The figures as a Markdown table.
pub fn markdown(comparison: &ForecastComparison, md: &mut String) {
    let coverage = format!("{:.0}% interval coverage", comparison.level * 100.0);
    table_header(
        md,
        &[
            "model",
            "kind",
            "sMAPE %",
            "MAPE %",
            "MASE",
            &coverage,
            "p50 / p95 ms per series",
            "series/s",
            "$ per 1,000 series",
        ],
    );
    for m in &comparison.models {
        let _ = writeln!(
            md,
            "| {} (`{}`) | {} | {} | {} | {} | {} | {:.2} / {:.2} | {:.1} | {:.2e} |",
            m.name,
            m.model_used,
            m.kind,
            interval(&m.smape, 2),
            interval(&m.mape, 2),
            interval(&m.mase, 3),
            interval(&m.interval_coverage, 3),
            m.latency_p50_ms,
            m.latency_p95_ms,
            m.throughput_per_s,
            m.cost_per_1000_usd
        );
    }
    let mut columns = vec!["series".to_string(), "held out".to_string()];
    columns.extend(
        comparison
            .models
            .iter()
            .map(|m| format!("`{}` sMAPE % (method)", m.model_used)),
    );
    md.push('\n');
    table_header(md, &columns.iter().map(String::as_str).collect::<Vec<_>>());
    for s in &comparison.series {
        let cells: Vec<String> = s
            .forecasts
            .iter()
            .map(|f| format!("{:.2} ({})", f.smape, f.method))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            s.name,
            s.actual.len(),
            cells.join(" | ")
        );
    }
}

/// The figures as an HTML table.
pub fn html_table(comparison: &ForecastComparison) -> String {
    let mut page = format!("<table><tr><th>model</th><th>kind</th><th>sMAPE %</th><th>MAPE %</th><th>MASE</th><th>{:.0}% interval coverage</th><th>p50 / p95 ms per series</th><th>series/s</th><th>$ per 1,000 series</th></tr>", comparison.level * 100.0);
    for m in &comparison.models {
        let _ = write!(page, "<tr><td>{} (<code>{}</code>)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2} / {:.2}</td><td>{:.1}</td><td>{:.2e}</td></tr>",
            escape(&m.name), escape(&m.model_used), m.kind, interval(&m.smape, 2), interval(&m.mape, 2), interval(&m.mase, 3), interval(&m.interval_coverage, 3), m.latency_p50_ms, m.latency_p95_ms, m.throughput_per_s, m.cost_per_1000_usd);
    }
    page.push_str("</table>");
    page
}

/// A fan chart of one series: the recent history, the held-out values (dashed) and each
/// method's point forecast with its interval band.
pub fn fan_chart_svg(series: &SeriesResult, level: f64) -> String {
    let (w, h, pad) = (640.0, 300.0, 50.0);
    let horizon = series.actual.len();
    let shown = series.history.len().min((3 * horizon).max(36));
    let history = &series.history[series.history.len() - shown..];
    let total = shown + horizon;
    // The y range covers the data and the point forecasts; bands are clipped to it plus a
    // margin, so one method's wide (or unbounded) interval does not flatten the others.
    let mut values: Vec<f64> = history.iter().chain(&series.actual).copied().collect();
    for f in &series.forecasts {
        values.extend(f.point.iter().filter(|v| v.is_finite()));
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let margin = ((hi - lo) * 0.25).max(1e-9);
    let (lo, hi) = (lo - margin, hi + margin);
    let x = |i: usize| pad + i as f64 / (total.max(2) - 1) as f64 * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v.clamp(lo, hi) - lo) / (hi - lo) * (h - 2.0 * pad);
    let line = |from: usize, vs: &[f64]| -> String {
        vs.iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(from + i), y(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="fan chart of {name}"><title>{name}: history, held-out values and forecasts with {pct:.0}% intervals</title><rect width="100%" height="100%" fill="white"/><rect x="{pad}" y="{pad}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        w - 2.0 * pad,
        h - 2.0 * pad,
        name = escape(&series.name),
        pct = level * 100.0
    );
    for tick in 0..=4 {
        let v = lo + (hi - lo) * tick as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"#,
            pad - 4.0,
            y(v) + 3.0,
            format_value(v)
        );
    }
    let _ = write!(
        svg,
        r#"<line x1="{0:.1}" y1="{pad}" x2="{0:.1}" y2="{1}" stroke="silver" stroke-dasharray="3"/><text x="{0:.1}" y="{2}" font-size="10" text-anchor="middle">forecast origin</text>"#,
        x(shown - 1),
        h - pad,
        h - pad + 14.0
    );
    for (i, f) in series.forecasts.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut band: Vec<String> = f
            .upper
            .iter()
            .enumerate()
            .map(|(k, v)| format!("{:.1},{:.1}", x(shown + k), y(*v)))
            .collect();
        band.extend(
            f.lower
                .iter()
                .enumerate()
                .rev()
                .map(|(k, v)| format!("{:.1},{:.1}", x(shown + k), y(*v))),
        );
        let _ = write!(
            svg,
            r#"<polygon points="{}" fill="{colour}" fill-opacity="0.12" stroke="none"/><polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"><title>{}: {} (sMAPE {:.2}%)</title></polyline><text x="{}" y="{}" font-size="10" fill="{colour}">{} (sMAPE {:.2}%)</text>"#,
            band.join(" "),
            line(shown, &f.point),
            escape(&f.model_used),
            escape(&f.method),
            f.smape,
            pad + 6.0,
            pad + 12.0 + 12.0 * i as f64,
            escape(&f.model_used),
            f.smape
        );
    }
    let _ = write!(
        svg,
        r#"<polyline points="{}" fill="none" stroke="black" stroke-width="1.5"><title>history</title></polyline><polyline points="{} {}" fill="none" stroke="black" stroke-width="1.5" stroke-dasharray="4"><title>held-out values</title></polyline></svg>"#,
        line(0, history),
        line(shown - 1, &history[shown - 1..]),
        line(shown, &series.actual)
    );
    svg
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-2) {
        format!("{v:.2e}")
    } else {
        format!("{v:.1}")
    }
}
