//! `msp-mesh bench compare`: the reports exist in three forms, every reported accuracy equals
//! the one recomputed here from the report's own predictions and the file's labels, intervals
//! bracket their values, and the quality figures are the same on a second run.

mod common;

use std::path::Path;

use common::mesh_command;
use serde_json::Value;

/// 400 UCI sentences (every fifth of each source), as JSON lines with label names.
fn sentiment_records(path: &Path) {
    let rows =
        mesh_agents::datasets::sentiment(&mesh_models::workspace_data_dir().join("uci-sentiment"))
            .expect("run `msp-mesh prepare` first");
    let labels = ["NEGATIVE", "POSITIVE"];
    let text: String = rows
        .iter()
        .step_by(5)
        .take(400)
        .map(|r| serde_json::json!({"text": r.text, "label": labels[r.label]}).to_string() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Runs `bench compare` for `task` (200 bootstrap resamples); returns `report.json`.
fn compare(task: &str, data: &Path, out: &Path) -> Value {
    let run = mesh_command("bench compare", &out.join("partners.json"))
        .args(["--task", task, "--bootstrap", "200"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// The report without the measured times (which vary run to run).
fn quality(report: &Value) -> Value {
    let mut report = report.clone();
    for model in report["models"].as_array_mut().unwrap() {
        let model = model.as_object_mut().unwrap();
        for timed in [
            "latency_p50_ms",
            "latency_p95_ms",
            "throughput_per_s",
            "cost_per_1000_usd",
            "name",
        ] {
            model.remove(timed);
        }
    }
    report
}

#[test]
fn sentiment_comparison_reports_recomputable_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sentiment.jsonl");
    sentiment_records(&data);
    let labels: Vec<usize> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| usize::from(serde_json::from_str::<Value>(l).unwrap()["label"] == "POSITIVE"))
        .collect();

    let first = compare("sentiment", &data, &dir.path().join("first"));
    assert_eq!(first["records"], 400);
    let models = first["models"].as_array().unwrap();
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["model_used"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids[0].starts_with("sentiment-minilm@"), "{ids:?}");
    for model in models {
        let predictions: Vec<usize> = model["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        let right = predictions
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        let accuracy = &model["accuracy"];
        assert!(
            (accuracy["value"].as_f64().unwrap() - right as f64 / 400.0).abs() < 1e-12,
            "{model}"
        );
        for figure in ["accuracy", "macro_f1", "roc_auc"] {
            let e = &model[figure];
            if e["value"].is_null() {
                continue;
            }
            let (v, lo, hi) = (
                e["value"].as_f64().unwrap(),
                e["ci_low"].as_f64().unwrap(),
                e["ci_high"].as_f64().unwrap(),
            );
            assert!(lo <= v + 1e-9 && v <= hi + 1e-9, "{figure} of {model}");
        }
    }
    // The encoder's head beats the bag of words, which beats the majority class.
    let accuracy = |i: usize| models[i]["accuracy"]["value"].as_f64().unwrap();
    assert!(
        accuracy(0) > accuracy(1) && accuracy(1) > accuracy(2),
        "{ids:?}"
    );
    assert!(models[0]["roc_auc"]["value"].as_f64().unwrap() > 0.9);
    assert!(models[0]["latency_p50_ms"].as_f64().unwrap() > 0.0);

    let html = std::fs::read_to_string(dir.path().join("first/report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "scatter and ROC plots");
    let md = std::fs::read_to_string(dir.path().join("first/report.md")).unwrap();
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| ") && l.contains("`"))
            .count(),
        3
    );

    let second = compare("sentiment", &data, &dir.path().join("second"));
    assert_eq!(quality(&first), quality(&second), "same data, same figures");
}

#[test]
fn tasks_not_implemented_yet_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty.jsonl");
    std::fs::write(&data, "").unwrap();
    let run = mesh_command("bench compare", &dir.path().join("partners.json"))
        .args(["--task", "forecast"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("not implemented yet"));
}

/// 600 standard-normal points in 3 dimensions and 20 planted at distance 7 (label 1), as CSV.
fn planted_points(path: &Path) {
    let mut rng = mesh_agents::train::SplitMix64::new(7);
    let mut normal = || {
        let (u, v) = (rng.next_f64().max(1e-12), rng.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let mut csv = String::from("cpu,memory,disk,label\n");
    for i in 0..620 {
        let anomaly = i % 31 == 30;
        let p: Vec<f64> = (0..3).map(|_| normal()).collect();
        let p: Vec<f64> = if anomaly {
            let norm = p.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-9);
            p.iter().map(|x| x / norm * 7.0).collect()
        } else {
            p
        };
        csv.push_str(&format!(
            "{},{},{},{}\n",
            p[0],
            p[1],
            p[2],
            u8::from(anomaly)
        ));
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn anomaly_comparison_finds_planted_points() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("points.csv");
    planted_points(&data);
    let report = compare("anomaly", &data, dir.path());
    assert_eq!(report["records"], 620);
    assert_eq!(report["label_counts"], serde_json::json!([600, 20]));
    let models = report["models"].as_array().unwrap();
    assert!(models[0]["model_used"]
        .as_str()
        .unwrap()
        .starts_with("isolation-forest@"));
    assert_eq!(models[1]["model_used"], "robust-z");
    let truth: Vec<u64> = (0..620).map(|i| u64::from(i % 31 == 30)).collect();
    for model in models {
        let predictions: Vec<u64> = model["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect();
        let right = predictions
            .iter()
            .zip(&truth)
            .filter(|(p, t)| p == t)
            .count();
        assert!(
            (model["accuracy"]["value"].as_f64().unwrap() - right as f64 / 620.0).abs() < 1e-12
        );
        // Points at distance 7 in 3 standard-normal dimensions are far outside the cloud.
        assert!(
            model["roc_auc"]["value"].as_f64().unwrap() > 0.99,
            "{model}"
        );
        let caught = predictions
            .iter()
            .zip(&truth)
            .filter(|(p, t)| **p == 1 && **t == 1)
            .count();
        assert!(
            caught >= 18,
            "{caught} of 20 planted points flagged by {}",
            model["model_used"]
        );
    }
}

/// Every fifth customer of modeldata's mlc_churn (1,000 records), as CSV.
fn churn_csv(path: &Path) {
    let records =
        mesh_agents::datasets::churn_records(&mesh_models::workspace_data_dir().join("modeldata"))
            .expect("run `msp-mesh prepare` first");
    let columns: Vec<String> = records[0].keys().cloned().collect();
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(&columns).unwrap();
    for record in records.iter().step_by(5) {
        let row: Vec<String> = columns
            .iter()
            .map(|c| match &record[c] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        writer.write_record(&row).unwrap();
    }
    writer.flush().unwrap();
}

#[test]
fn churn_comparison_names_the_served_model_and_its_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("clients.csv");
    churn_csv(&data);
    let report = compare("churn", &data, dir.path());
    assert_eq!(report["records"], 1000);
    let models = report["models"].as_array().unwrap();
    let ids: Vec<&str> = models
        .iter()
        .map(|m| m["model_used"].as_str().unwrap())
        .collect();
    assert!(ids[0].contains("mlc-churn@"), "{ids:?}");
    assert_eq!(&ids[1..], ["churn-logistic-cross-fitted", "majority-class"]);
    assert!(models[0]["trained_on"][0]
        .as_str()
        .unwrap()
        .contains("mlc_churn"));
    let auc = |i: usize| models[i]["roc_auc"]["value"].as_f64().unwrap();
    // The served model saw these customers (training-set figure); the cross-fitted one did not.
    assert!(auc(0) > 0.75 && auc(1) > 0.7, "{} {}", auc(0), auc(1));
    assert!(
        (auc(2) - 0.5).abs() < 0.1,
        "class frequencies rank nothing: {}",
        auc(2)
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("training-set figures"), "{md}");
}
