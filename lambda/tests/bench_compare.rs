//! `msp-mesh bench compare`: the reports exist in three forms, every reported accuracy equals
//! the one recomputed here from the report's own predictions and the file's labels, intervals
//! bracket their values, and the quality figures are the same on a second run.

mod common;
#[path = "common/standin.rs"]
mod standin;

use std::path::Path;

use common::mesh_command;
use serde_json::Value;

/// 400 UCI sentences (every fifth of each source), as JSON lines with label names.
fn sentiment_records(path: &Path) {
    let rows =
        mesh_agents::datasets::sentiment(&mesh_testing::workspace_data_dir().join("uci-sentiment"))
            .expect("run `msp-mesh prepare` first");
    let labels = mesh_agents::datasets::SENTIMENT_LABELS;
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
    compare_with(task, data, out, &[], &[])
}

/// [`compare`] with more arguments and environment.
fn compare_with(task: &str, data: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    common::succeed(
        mesh_command("bench compare", &out.join("partners.json"))
            .args(["--task", task, "--bootstrap", "200"])
            .args(args)
            .envs(env.iter().copied())
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out),
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// The report without the measured times (which vary run to run).
fn quality(report: &Value) -> Value {
    let mut report = report.clone();
    for path in ["/models", "/forecast/models"] {
        let models = report.pointer_mut(path).and_then(Value::as_array_mut);
        for model in models.into_iter().flatten() {
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
    }
    report
}

#[test]
fn cloud_providers_join_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sentiment.jsonl");
    sentiment_records(&data);
    let content = std::fs::read_to_string(&data).unwrap();
    let few: Vec<&str> = content.lines().take(40).collect();
    std::fs::write(&data, few.join("\n")).unwrap();
    let positives = few.iter().filter(|l| l.contains("\"POSITIVE\"")).count();
    let (url, standin) = standin::start_standin();
    *standin.script.lock().unwrap() = mesh_standin::Script {
        sentiment: "MIXED".into(),
        scores: [0.3, 0.1, 0.1, 0.5],
        completion: "Positive.".into(),
        ..Default::default()
    };
    let report = compare_with(
        "sentiment",
        &data,
        dir.path(),
        &["--comprehend", "--bedrock"],
        &common::aws_env(&url),
    );
    let models = report["models"].as_array().unwrap();
    let cloud: Vec<&Value> = models.iter().filter(|m| m["kind"] == "cloud").collect();
    assert_eq!(cloud.len(), 2, "{models:?}");
    assert_eq!(cloud[0]["model_used"], mesh_cloud::COMPREHEND_MODEL);
    assert_eq!(cloud[1]["model_used"], mesh_cloud::DEFAULT_BEDROCK_MODEL);
    // MIXED with positive 0.3 > negative 0.1 reads positive; "Positive." names the label.
    for model in &cloud {
        let accuracy = model["accuracy"]["value"].as_f64().unwrap();
        assert!(
            (accuracy - positives as f64 / 40.0).abs() < 1e-12,
            "{model}"
        );
    }
    assert_eq!(standin.calls_of("Comprehend.DetectSentiment").len(), 40);
    assert_eq!(standin.calls_of("Bedrock.Converse").len(), 40);
    // Comprehend's price: units of 100 characters, at least 3 a request, $0.0001 each.
    let units: usize = few
        .iter()
        .map(|l| {
            let text = serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .chars()
                .count();
            text.div_ceil(100).max(3)
        })
        .sum();
    let cost = cloud[0]["cost_per_1000_usd"].as_f64().unwrap();
    assert!(
        (cost - units as f64 * 0.0001 / 40.0 * 1000.0).abs() < 1e-9,
        "{cost}"
    );
}

#[test]
fn sentiment_comparison_reports_recomputable_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sentiment.jsonl");
    sentiment_records(&data);
    let labels: Vec<usize> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| {
            let label = serde_json::from_str::<Value>(l).unwrap()["label"].clone();
            mesh_agents::datasets::SENTIMENT_LABELS
                .iter()
                .position(|n| label == *n)
                .unwrap()
        })
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
fn reduced_precision_encoders_keep_the_heads_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sentiment.jsonl");
    sentiment_records(&data);
    let report = compare_with(
        "sentiment",
        &data,
        &dir.path().join("variants"),
        &["--encoder-variants", "f16,int8"],
        &[],
    );
    let models = report["models"].as_array().unwrap();
    let model_used = |i: usize| models[i]["model_used"].as_str().unwrap();
    assert!(
        model_used(0).starts_with("sentiment-minilm@"),
        "{}",
        model_used(0)
    );
    assert!(
        model_used(1).ends_with(" on minilm-l6-distilbert@1+f16"),
        "{}",
        model_used(1)
    );
    assert!(
        model_used(2).ends_with(" on minilm-l6-distilbert@1+int8"),
        "{}",
        model_used(2)
    );
    let predictions = |i: usize| -> Vec<u64> {
        models[i]["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect()
    };
    let changed = |i: usize| {
        predictions(0)
            .iter()
            .zip(predictions(i))
            .filter(|(a, b)| **a != *b)
            .count()
    };
    // The same head on reduced-precision weights: f16 changes no prediction of the 400,
    // int8 at most 2.
    assert_eq!(changed(1), 0);
    assert!(changed(2) <= 2, "int8 changed {} predictions", changed(2));
}

/// Two hand-built series with known structure: a monthly one with a linear trend and a
/// 12-month season, and a straight line (no season).
fn known_series(path: &Path) {
    let seasonal: Vec<f64> = (0..120)
        .map(|t| {
            let t = f64::from(t);
            100.0 + 0.5 * t + 10.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin()
        })
        .collect();
    let line: Vec<f64> = (0..40).map(|t| 50.0 + 2.0 * f64::from(t)).collect();
    std::fs::write(
        path,
        format!(
            "{}\n{}\n",
            serde_json::json!({"name": "trend-and-season", "values": seasonal, "season_length": 12}),
            serde_json::json!({"name": "line", "values": line, "horizon": 6}),
        ),
    )
    .unwrap();
}

#[test]
fn forecast_comparison_scores_every_method_on_the_held_out_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("series.jsonl");
    known_series(&data);
    let first = compare("forecast", &data, &dir.path().join("first"));
    assert_eq!(first["records"], 2);
    let comparison = &first["forecast"];
    let ids: Vec<&str> = comparison["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_used"].as_str().unwrap())
        .collect();
    assert!(ids[0].starts_with("revenue-forecast@"), "{ids:?}");
    assert_eq!(&ids[1..], ["seasonal-naive", "drift"]);

    let series = comparison["series"].as_array().unwrap();
    let (seasonal, line) = (&series[0], &series[1]);
    // The last season (12 points) and the 6 asked-for points are held out.
    assert_eq!(seasonal["actual"].as_array().unwrap().len(), 12);
    assert_eq!(seasonal["history"].as_array().unwrap().len(), 108);
    assert_eq!(line["actual"].as_array().unwrap().len(), 6);
    let smape_of = |s: &Value, i: usize| s["forecasts"][i]["smape"].as_f64().unwrap();
    for s in series {
        let actual: Vec<f64> = serde_json::from_value(s["actual"].clone()).unwrap();
        for f in s["forecasts"].as_array().unwrap() {
            let point: Vec<f64> = serde_json::from_value(f["point"].clone()).unwrap();
            let recomputed = 100.0
                * actual
                    .iter()
                    .zip(&point)
                    .map(|(a, p)| 2.0 * (a - p).abs() / (a.abs() + p.abs()))
                    .sum::<f64>()
                / actual.len() as f64;
            assert!(
                (recomputed - f["smape"].as_f64().unwrap()).abs() < 1e-9,
                "{f}"
            );
        }
    }
    // Seasonal naive repeats last year, so it misses the trend by 0.5 x 12 = 6 at every step.
    let naive: Vec<f64> =
        serde_json::from_value(seasonal["forecasts"][1]["point"].clone()).unwrap();
    let actual: Vec<f64> = serde_json::from_value(seasonal["actual"].clone()).unwrap();
    for (a, p) in actual.iter().zip(&naive) {
        assert!((a - p - 6.0).abs() < 1e-9, "{a} {p}");
    }
    // The agent's model recovers trend and season; drift is exact on the straight line.
    assert!(smape_of(seasonal, 0) < 0.5, "{}", smape_of(seasonal, 0));
    assert!(
        smape_of(seasonal, 0) < smape_of(seasonal, 1)
            && smape_of(seasonal, 1) < smape_of(seasonal, 2)
    );
    assert!(smape_of(line, 2) < 1e-9);
    assert!(smape_of(line, 0) < 0.5, "{}", smape_of(line, 0));

    let html = std::fs::read_to_string(dir.path().join("first/report.html")).unwrap();
    assert_eq!(html.matches("aria-label=\"fan chart of").count(), 2);
    assert!(html.contains("aria-label=\"sMAPE % against latency\""));
    let md = std::fs::read_to_string(dir.path().join("first/report.md")).unwrap();
    assert!(md.contains("| trend-and-season | 12 |"), "{md}");

    let second = compare("forecast", &data, &dir.path().join("second"));
    assert_eq!(quality(&first), quality(&second), "same data, same figures");
}

/// 600 standard-normal points in 3 dimensions and 20 planted at distance 7 (label 1), as CSV.
fn planted_points(path: &Path) {
    let mut rng = mesh_numeric::rng::SplitMix64::new(7);
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
        mesh_agents::datasets::churn_records(&mesh_testing::workspace_data_dir().join("modeldata"))
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
