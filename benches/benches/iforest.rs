//! Isolation forest on a labelled CSV (header row; last column 1 = anomaly): ROC-AUC and
//! fit + score time for five seeds (`--seeds N`), on one thread and on every core, to compare with
//! scikit-learn's `IsolationForest` on the same file (`scripts/bench_iforest.py`).
//!
//! `cargo bench --workspace --bench iforest -- --csv FILE [--name NAME] [--seeds 5]
//! [--threads 1,2] [--jsonl FILE]` (`scripts/bench_numeric.sh iforest` runs it beside scikit-learn on ODDS
//! Shuttle and two aeon sensor series). A last line per thread count gives the checksum of the
//! seed-0 scores, so a change that should not move a score can be checked to move none.

use std::time::Instant;

use mesh_benches::{arg_value, emit};
use mesh_numeric::iforest::{ForestOptions, IsolationForest};
use mesh_numeric::tabular::roc_auc;

fn main() {
    let csv = arg_value("csv").expect("--csv FILE");
    let name = arg_value("name").unwrap_or_else(|| csv.clone());
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
    eprintln!(
        "{name}: {} rows x {} features, {} anomalies",
        points.len(),
        points[0].len(),
        labels.iter().filter(|&&l| l).count()
    );
    let seeds: u64 = arg_value("seeds").map_or(5, |s| s.parse().expect("--seeds: a number"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<usize> = arg_value("threads")
        .unwrap_or_else(|| format!("1,{cores}"))
        .split(',')
        .map(|t| t.trim().parse().expect("--threads: numbers"))
        .collect();
    for &threads in &threads {
        let method = match threads {
            1 => "1 thread".to_string(),
            n => format!("{n} threads"),
        };
        let mut checksum = 0.0;
        for seed in 0..seeds {
            let started = Instant::now();
            let forest = IsolationForest::fit(
                &points,
                &ForestOptions {
                    seed,
                    ..Default::default()
                },
            );
            let scores = forest.score_all(&points, threads);
            let seconds = started.elapsed().as_secs_f64();
            if seed == 0 {
                checksum = scores.iter().sum::<f64>();
            }
            emit(&serde_json::json!({
                "bench": "iforest", "series": name, "impl": "ours", "method": method,
                "seed": seed, "auc": roc_auc(&scores, &labels), "seconds": seconds,
            }));
        }
        eprintln!("{name}, {method}: sum of the seed-0 scores {checksum:.17e}");
    }
}
