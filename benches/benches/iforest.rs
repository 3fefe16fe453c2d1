//! Isolation forest on a labelled CSV (header row; last column 1 = anomaly): ROC-AUC and
//! fit + score time for five seeds, to compare with scikit-learn's `IsolationForest` on the
//! same file (ODDS Shuttle from the `river` wheel).
//!
//! `cargo bench -p mesh-benches --bench iforest -- --csv shuttle.csv [--jsonl FILE]`
//! (`scripts/bench_numeric.sh` runs it beside scikit-learn).

use std::time::Instant;

use mesh_benches::{arg_value, emit};
use mesh_numeric::iforest::{ForestOptions, IsolationForest};
use mesh_numeric::tabular::roc_auc;

fn main() {
    let csv = arg_value("csv").expect("--csv FILE");
    let text = std::fs::read_to_string(&csv).expect("read the CSV");
    let mut points = Vec::new();
    let mut labels = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut values: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse().expect("number"))
            .collect();
        labels.push(values.pop().expect("label column") == 1.0);
        points.push(values);
    }
    println!(
        "{} rows x {} features, {} anomalies",
        points.len(),
        points[0].len(),
        labels.iter().filter(|&&l| l).count()
    );
    for seed in 0..5 {
        let started = Instant::now();
        let forest = IsolationForest::fit(
            &points,
            &ForestOptions {
                seed,
                ..Default::default()
            },
        );
        let scores: Vec<f64> = points.iter().map(|p| forest.score(p)).collect();
        let seconds = started.elapsed().as_secs_f64();
        emit(&serde_json::json!({
            "bench": "iforest", "impl": "ours", "seed": seed,
            "auc": roc_auc(&scores, &labels), "seconds": seconds,
        }));
    }
}
