//! Forecast accuracy on the series `scripts/bench_forecast.py` writes (AirPassengers from the
//! `river` wheel, statsmodels' co2, nile, realgdp, elnino): the last `holdout` points held
//! out, our MAPE / sMAPE and fit + forecast time, to set beside statsforecast's `AutoETS` and
//! statsmodels' ETS on the same series.
//!
//! `cargo bench -p mesh-benches --bench forecast -- --index DIR/index.json [--jsonl FILE]`

use std::time::Instant;

use mesh_agents::forecast::{forecast, mape, smape, ForecastOptions};
use mesh_benches::{arg_value, emit};
use serde_json::Value;

fn main() {
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
        let (train, test) = values.split_at(values.len() - holdout);
        let started = Instant::now();
        let result = forecast(
            train,
            &ForecastOptions {
                horizon: holdout,
                season_lengths: season,
                level: 0.95,
            },
        )
        .expect("forecast");
        let seconds = started.elapsed().as_secs_f64();
        let mut line = serde_json::json!({
            "bench": "forecast", "series": name, "impl": "ours", "method": result.method,
            "mape": mape(test, &result.point), "smape": smape(test, &result.point), "seconds": seconds,
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
