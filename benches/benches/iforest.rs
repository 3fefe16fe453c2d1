//! Isolation forest on a labelled CSV (header row; last column 1 = anomaly): ROC-AUC and
//! fit + score time for five seeds, to compare with scikit-learn's `IsolationForest` on the
//! same file (ODDS Shuttle from the `river` wheel).
//!
//! `cargo bench -p mesh-benches --bench iforest -- --csv shuttle.csv`

use std::time::Instant;

use mesh_agents::iforest::{ForestOptions, IsolationForest};

/// ROC-AUC by the Mann-Whitney U statistic (ties count one half).
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let csv = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1))
        .expect("--csv FILE");
    let text = std::fs::read_to_string(csv).expect("read the CSV");
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
        let secs = started.elapsed().as_secs_f64();
        println!(
            "seed {seed}: ROC-AUC {:.4}, fit + score {secs:.2} s",
            roc_auc(&scores, &labels)
        );
    }
}
