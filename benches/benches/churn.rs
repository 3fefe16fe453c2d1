//! Churn model on modeldata's `mlc_churn`: held-out ROC-AUC and fit + score time of our
//! logistic regression, our gradient-boosted trees, and the model `/client-health/train` keeps
//! (the learner its own cross-validation inside the training rows chooses), over a stratified
//! 5-fold split of the records: every record is a test record once. Each fold's rows are
//! written to `--out-dir` (`train<k>.csv`, `test<k>.csv`) so `scripts/bench_churn.py` scores
//! scikit-learn's `LogisticRegression` and `HistGradientBoostingClassifier` on exactly the same
//! rows. One fold alone (1,000 test records, ~140 churned) moves AUC by about ±0.02; the mean
//! over the five is the figure to compare.
//!
//! `cargo bench -p mesh-benches --bench churn -- --out-dir DIR [--data-dir D] [--jsonl FILE]`

use std::time::Instant;

use mesh_agents::client_health;
use mesh_agents::client_health::{ChurnModel, Learner};
use mesh_agents::datasets::{churn_records, CHURN_TARGET};
use mesh_benches::{arg_value, emit};
use mesh_numeric::tabular::{binary_target, roc_auc, stratified_folds, Record};
use serde_json::Value;

fn write_csv(path: &std::path::Path, records: &[&Record]) {
    let mut columns: Vec<&String> = records.iter().flat_map(|r| r.keys()).collect();
    columns.sort();
    columns.dedup();
    let mut w = csv::Writer::from_path(path).expect("create the CSV");
    w.write_record(&columns).expect("write");
    for r in records {
        w.write_record(columns.iter().map(|c| match r.get(*c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }))
        .expect("write");
    }
}

fn main() {
    let data_dir = arg_value("data-dir").map_or_else(mesh_testing::workspace_data_dir, Into::into);
    let out_dir = std::path::PathBuf::from(arg_value("out-dir").expect("--out-dir DIR"));
    std::fs::create_dir_all(&out_dir).expect("create --out-dir");
    let records =
        churn_records(&data_dir.join("modeldata")).expect("run `msp-mesh data pull modeldata`");
    let labels: Vec<bool> = records
        .iter()
        .map(|r| binary_target(&r[CHURN_TARGET]).expect("yes/no"))
        .collect();
    let folds = stratified_folds(&labels, FOLDS, 42);
    for fold in 0..FOLDS {
        let (train, test): (Vec<usize>, Vec<usize>) =
            (0..records.len()).partition(|&i| folds[i] != fold);
        let pick = |idx: &[usize]| idx.iter().map(|&i| &records[i]).collect::<Vec<_>>();
        write_csv(&out_dir.join(format!("train{fold}.csv")), &pick(&train));
        write_csv(&out_dir.join(format!("test{fold}.csv")), &pick(&test));

        let train_records: Vec<Record> = train.iter().map(|&i| records[i].clone()).collect();
        let truth: Vec<bool> = test.iter().map(|&i| labels[i]).collect();
        let run = |name: &str, fit: &dyn Fn() -> ChurnModel| {
            let started = Instant::now();
            let model = fit();
            let scores: Vec<f64> = test
                .iter()
                .map(|&i| client_health::churn_log_odds(&model, &records[i]))
                .collect();
            let seconds = started.elapsed().as_secs_f64();
            emit(&serde_json::json!({
                "bench": "churn", "impl": "ours", "model": name, "fold": fold,
                "auc": roc_auc(&scores, &truth), "seconds": seconds,
                "learner": model.metrics.learner.key(), "train_rows": train.len(),
                "test_rows": test.len(), "features": model.encoder.width(),
            }));
        };
        // The two learners `/client-health/train` chooses between, each fitted on the same rows.
        run("logistic regression (Newton, L2, C=1)", &|| {
            client_health::fit_once(&train_records, CHURN_TARGET, Learner::LogisticRegression)
                .expect("fit")
        });
        run(
            "gradient-boosted trees (forust-ml, 100 rounds, rate 0.1, depth 5)",
            &|| {
                client_health::fit_once(&train_records, CHURN_TARGET, Learner::GradientBoostedTrees)
                    .expect("fit")
            },
        );
        // What the route serves: both learners cross-validated on the training rows, the
        // better refitted on all of them.
        run(
            "as /client-health/train chooses (5-fold CV, then refit)",
            &|| {
                client_health::train("churn", &train_records, CHURN_TARGET, "bench").expect("train")
            },
        );
    }
}

/// Outer folds: each is the test set once.
const FOLDS: usize = 5;
