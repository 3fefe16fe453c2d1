//! Forecast accuracy on the series `scripts/bench_forecast.py` writes (AirPassengers from the
//! `river` wheel, statsmodels' co2, nile, realgdp, elnino): the last `holdout` points held
//! out, our MAPE / sMAPE and fit + forecast time, to set beside statsforecast's `AutoETS` and
//! statsmodels' ETS on the same series.
//!
//! With `--origins K` (K > 1), each series is scored on its last K windows of `holdout` points
//! instead (rolling origin, Tashman 2000: one window is a noisy comparison), one
//! `forecast_rolling` line per series with the means.
//!
//! `--bench-name NAME` sets the lines' `bench` field (the validation set's own table).
//!
//! `cargo bench -p mesh-benches --bench forecast -- --index DIR/index.json [--origins K]
//! [--bench-name NAME] [--jsonl FILE]`

use std::time::Instant;

use mesh_benches::{arg_value, emit};
use mesh_numeric::forecast::{forecast, mape, smape, ForecastOptions};
use serde_json::Value;

/// Mean absolute error over the training part's mean absolute naive error at lag `m` (1 for
/// a series without a season): MASE (Hyndman and Koehler, 2006), as the reference script.
fn mase(train: &[f64], test: &[f64], point: &[f64], m: usize) -> f64 {
    let lag = m.max(1);
    let naive: Vec<f64> = train
        .windows(lag + 1)
        .map(|w| (w[lag] - w[0]).abs())
        .collect();
    let scale = naive.iter().sum::<f64>() / naive.len() as f64;
    let error = test
        .iter()
        .zip(point)
        .map(|(a, f)| (a - f).abs())
        .sum::<f64>()
        / test.len() as f64;
    error / scale
}

fn options(horizon: usize, season: &[usize]) -> ForecastOptions {
    ForecastOptions {
        horizon,
        season_lengths: season.to_vec(),
        level: 0.95,
    }
}

/// Rolling-origin evaluation: windows `holdout` long ending at the series' end and then
/// `holdout`, `2 * holdout`, ... points earlier (`origins` in all), each forecast from
/// everything before it; one line with the mean MAPE / sMAPE and the per-window sMAPE
/// (newest window first), as `scripts/bench_forecast.py --origins` writes it.
fn rolling(
    bench: &str,
    name: &str,
    values: &[f64],
    holdout: usize,
    season: &[usize],
    origins: usize,
) {
    let (mut mapes, mut smapes, mut methods) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for k in 0..origins {
        let cut = values.len() - (k + 1) * holdout;
        let (train, test) = (&values[..cut], &values[cut..cut + holdout]);
        let result = forecast(train, &options(holdout, season)).expect("forecast");
        mapes.push(mape(test, &result.point));
        smapes.push(smape(test, &result.point));
        methods.push(result.method);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    emit(&serde_json::json!({
        "bench": bench, "series": name, "impl": "ours", "origins": origins,
        "method": "holdout-sMAPE selection (per window: methods)",
        "mape": mean(&mapes), "smape": mean(&smapes),
        "seconds": started.elapsed().as_secs_f64() / origins as f64,
        "smape_by_origin": smapes, "methods": methods,
    }));
}

fn main() {
    let origins: usize = arg_value("origins").map_or(1, |v| v.parse().expect("--origins N"));
    let default_bench = if origins > 1 {
        "forecast_rolling"
    } else {
        "forecast"
    };
    let bench = arg_value("bench-name").unwrap_or_else(|| default_bench.into());
    let index_path = std::path::PathBuf::from(arg_value("index").expect("--index index.json"));
    let dir = index_path.parent().expect("index folder").to_path_buf();
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).expect("read the index"))
            .expect("JSON");
    let series = index
        .get("series")
        .unwrap_or(&index)
        .as_array()
        .expect("a list of series");
    for s in series {
        let name = s["name"].as_str().expect("name");
        let file = dir.join(s["file"].as_str().expect("file"));
        let holdout = s["holdout"].as_u64().expect("holdout") as usize;
        let season: Vec<usize> = s["season_length"]
            .as_u64()
            .filter(|&m| m > 1)
            .map(|m| vec![m as usize])
            .unwrap_or_default();
        let text = std::fs::read_to_string(&file).expect("read the series");
        let values: Vec<f64> = text
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().parse().expect("a number"))
            .collect();
        if origins > 1 {
            rolling(&bench, name, &values, holdout, &season, origins);
            continue;
        }
        let (train, test) = values.split_at(values.len() - holdout);
        let started = Instant::now();
        let result = forecast(train, &options(holdout, &season)).expect("forecast");
        let seconds = started.elapsed().as_secs_f64();
        let mut line = serde_json::json!({
            "bench": bench, "series": name, "impl": "ours", "method": result.method,
            "mape": mape(test, &result.point), "smape": smape(test, &result.point),
            "mase": mase(train, test, &result.point, season.first().copied().unwrap_or(1)),
            "seconds": seconds,
        });
        if arg_value("candidates").is_some_and(|v| v == "true") {
            line["candidates"] = result
                .candidates
                .iter()
                .map(|c| serde_json::json!({"name": c.name, "cv_smape": c.smape}))
                .collect();
        }
        emit(&line);
    }
}
