//! The language agents through the real server: `msp-mesh serve` started as a process on a
//! free port, spoken to over HTTP/1.1. Expectations are independent of the models' own
//! output: hand-checked indicators, ATT&CK's own descriptions, the data sets' labels, a
//! policy written to cover some controls and not others.

mod common;

use std::sync::OnceLock;

use common::{mesh_command, Server};
use serde_json::{json, Value};

/// One server for every test of this binary (killed when the test process exits).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let partners =
            std::env::temp_dir().join(format!("mesh-partners-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&partners);
        let state = std::env::temp_dir().join(format!("mesh-state-{}.db", std::process::id()));
        Server::start(&partners, &["--state-db", state.to_str().unwrap()])
    })
}

/// Sends one request and returns the status and the JSON body.
fn http(method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    server().http(method, path, content_type, body)
}

fn post(path: &str, body: Value) -> (u16, Value) {
    server().post(path, &body)
}

fn kinds_and_values(v: &Value) -> Vec<(String, String)> {
    v["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_string(),
                i["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn threat_analysis_extracts_indicators_and_names_its_models() {
    let text = "Ransomware note found on FS01. The loader called hxxp://update-check[.]net/gate.php from 185.220.101[.]4 \
                and dropped C:\\Users\\Public\\svc.exe (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08). \
                It exploits CVE-2023-4966.";
    let (status, v) = post("/threat-intelligence/analyze", json!({"text": text}));
    assert_eq!(status, 200, "{v}");
    let got = kinds_and_values(&v);
    for want in [
        ("url", "http://update-check.net/gate.php"),
        ("ipv4", "185.220.101.4"),
        ("file_path", "C:\\Users\\Public\\svc.exe"),
        (
            "sha256",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ),
        ("cve", "CVE-2023-4966"),
    ] {
        assert!(
            got.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {got:?}"
        );
    }
    assert!(
        !got.iter().any(|(k, _)| k == "domain"),
        "the URL's host is not reported again: {got:?}"
    );
    let model = v["model_used"].as_str().unwrap();
    assert!(
        model.contains("threat-category-minilm@3") && model.contains("all-minilm-l6-v2@1"),
        "{model}"
    );
    assert_ne!(v["threat_type"], "benign");
    let p: f64 = v["category_probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-3, "probabilities sum to {p}");
    assert!(!v["techniques"].as_array().unwrap().is_empty());
    assert!(!v["recommended_actions"].as_array().unwrap().is_empty());
    assert!(["LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&v["severity"].as_str().unwrap()));
    assert!(v["timestamp"].is_string() && v["detection_time"].is_string());
}

/// ATT&CK's own description of a technique retrieves that technique first.
#[test]
fn attack_technique_is_retrieved_for_its_own_description() {
    let attack = mesh_agents::knowledge::attack::Attack::load(
        &mesh_testing::workspace_data_dir().join("attack-enterprise"),
    )
    .unwrap();
    for id in ["T1486", "T1566.001", "T1110.003"] {
        let t = attack.technique(id).unwrap();
        let (status, v) = post(
            "/threat-intelligence/analyze",
            json!({"text": t.description, "top_k": 3}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["techniques"][0]["id"], id, "{}", v["techniques"]);
    }
}

/// Plain-language incidents, as a client writes them, get the right category and bring, within
/// the first three, techniques that ATT&CK's tactics and our labelling rules
/// (`datasets::technique_category`) put in that category. (The issue asks for T1566 itself on
/// the phishing ticket; today the top three are T1598 "Phishing for Information" techniques.)
#[test]
fn plain_language_incidents_bring_the_right_technique() {
    let attack = mesh_agents::knowledge::attack::Attack::load(
        &mesh_testing::workspace_data_dir().join("attack-enterprise"),
    )
    .unwrap();
    for (text, category, technique) in [
        (
            "Our CFO got an email pretending to be from our bank asking him to verify his login at a link; he entered his password",
            "phishing",
            Some("T1566"),
        ),
        (
            "All the files on the shared drive now end in .lockbit and there is a README note on every desktop saying our data is encrypted and we must pay in bitcoin to get the key",
            "ransomware",
            Some("T1486"),
        ),
    ] {
        let (status, v) = post(
            "/threat-intelligence/analyze",
            json!({"text": text, "top_k": 3}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["threat_type"], category, "{text}: {v}");
        let ids: Vec<&str> = v["techniques"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        let of_category = ids.iter().any(|id| {
            let t = attack.technique(id).unwrap();
            mesh_agents::datasets::technique_category(&t.id, &t.tactics) == Some(category)
        });
        assert!(of_category, "no {category} technique in the top 3 for {text:?}: {ids:?}");
        if let Some(technique) = technique {
            assert!(
                ids.iter().any(|id| id.split('.').next() == Some(technique)),
                "{technique} not in the top 3 for {text:?}: {ids:?}"
            );
        }
    }
}

/// Raw e-mails from the held-out SpamAssassin folders are recognised and judged by the e-mail head;
/// the head must agree with the folder labels on at least 34 of the first 40 (85%).
#[test]
fn raw_emails_are_judged_by_the_email_head() {
    let dir = mesh_testing::workspace_data_dir().join("spam-assassin");
    let mut right = 0;
    let mut total = 0;
    for (folder, spam) in [("spam-2", true), ("easy-ham-2", false)] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files.iter().take(20) {
            let raw: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            let (status, v) = post("/threat-intelligence", json!({"text": raw["text"]}));
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["judged_by"], "email-head");
            assert!(v["email"]["model_used"]
                .as_str()
                .unwrap()
                .starts_with("spam-email-minilm@2"));
            let judged_spam = v["threat_type"] != "benign";
            right += usize::from(judged_spam == spam);
            total += 1;
        }
    }
    assert!(
        right >= 34,
        "{right}/{total} held-out e-mails judged as labelled"
    );
}

#[test]
fn ordinary_text_is_benign_and_low() {
    let (status, v) = post(
        "/threat-intelligence/analyze",
        json!({"text": "Hi team, the quarterly all-hands moved to Thursday at 3pm in the main conference room. Lunch will be provided."}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["threat_type"], "benign", "{v}");
    assert_eq!(v["severity"], "LOW");
    assert!(v["indicators"].as_array().unwrap().is_empty());
}

/// UCI sentences (labelled by their authors) through the market route.
#[test]
fn market_sentiment_follows_labelled_sentences() {
    let (s, v) = post(
        "/market-intelligence/analyze",
        json!({"query": "Excellent product, works great and the price is fantastic.", "industry_segment": "smb"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sentiment"], "POSITIVE");
    assert!(v["sentiment_score"].as_f64().unwrap() > 0.8);
    assert_eq!(v["market_impact"], "Positive");
    assert_eq!(v["industry_segment"], "smb");
    assert!(v["model_used"]
        .as_str()
        .unwrap()
        .starts_with("sentiment-minilm@4"));
    let (_, v) = post(
        "/market-intelligence",
        json!({"query": "Terrible support. The device broke after two days and nobody answered."}),
    );
    assert!(v["sentiment_score"].as_f64().unwrap() < 0.2, "{v}");
    let (_, v) = post(
        "/market-intelligence/analyze",
        json!({"query": "Acme Networks Inc. reported revenue up 12% to $4.5 million in Q3 2025. Customers love the new dashboard. However the outage last week was a disaster for clients."}),
    );
    assert_eq!(v["sentences"].as_array().unwrap().len(), 3);
    assert_eq!(v["sentiment"], "MIXED", "{v}");
    let kinds: Vec<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["organisation", "percentage", "money", "date"]);
}

#[test]
fn nlp_query_answers_from_the_knowledge_base_or_says_it_does_not_know() {
    let (s, v) = post(
        "/nlp-query/ask",
        json!({"query": "How do adversaries use spearphishing attachments?"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["answer_method"], "extractive");
    assert_eq!(v["answer"], v["response"]);
    let retrieved: Vec<&str> = v["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(retrieved[..3].contains(&"T1566.001"), "{retrieved:?}");
    let sources: Vec<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        !sources.is_empty() && sources.iter().all(|s| retrieved.contains(s)),
        "{sources:?}"
    );
    assert!(
        v["answer"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("attach"),
        "{v}"
    );
    assert!(v["confidence"].as_f64().unwrap() >= 0.35);
    let (_, v) = post(
        "/nlp-query",
        json!({"query": "What is the best recipe for banana bread with walnuts?"}),
    );
    assert_eq!(v["answer_method"], "none", "{v}");
    assert!(v["answer"].as_str().unwrap().starts_with("I don't know"));
    assert!(v["sources"].as_array().unwrap().is_empty());
}

#[test]
fn compliance_finds_covered_controls_and_gaps() {
    let policy = "All hardware assets, including servers, laptops and network devices, are recorded in an asset inventory that is reviewed quarterly, and unauthorised devices are removed from the network. \
                  Multi-factor authentication is required for all remote access and for every administrator account. \
                  Backups of critical systems are taken daily, stored offline, and restores are tested every month.";
    let (s, v) = post(
        "/compliance/check",
        json!({"framework": "CIS", "policy_text": policy}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["framework"], "cis-v8");
    let covered: Vec<&str> = v["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["covered"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in ["CIS-1", "CIS-11"] {
        assert!(covered.contains(&id), "{id} not covered: {covered:?}");
    }
    for id in ["CIS-18", "CIS-14", "CIS-16"] {
        assert!(!covered.contains(&id), "{id} should be a gap: {covered:?}");
    }
    assert_eq!(
        v["gaps_found"].as_u64().unwrap() as usize,
        18 - covered.len()
    );
    let score = v["compliance_score"].as_f64().unwrap();
    assert!(score > 0.0 && score < 60.0, "{score}");
    assert_eq!(v["status"], "Needs Improvement");
    assert_eq!(
        v["recommendations"].as_array().unwrap().len(),
        v["gaps_found"].as_u64().unwrap() as usize
    );
}

/// The policy of issue 20, in an MSP's everyday words. Judged by hand, its sentences evidence
/// backups (PR.DS-11), backup integrity and restoration (RC.RP-03, RC.RP-05), authentication
/// (PR.AA-01, PR.AA-03) and software and malware protection (PR.PS-05, DE.CM-09): the backup
/// outcome must be covered, and nothing outside that set.
#[test]
fn compliance_credits_plain_policy_language_on_csf() {
    let policy = "We back up all servers nightly and test restores quarterly. \
                  All staff use MFA for email and VPN. \
                  Antivirus is installed on all laptops.";
    let (s, v) = post(
        "/compliance/check",
        json!({"framework": "nist-csf-2.0", "policy_text": policy}),
    );
    assert_eq!(s, 200, "{v}");
    let covered: Vec<&str> = v["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["covered"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(covered.contains(&"PR.DS-11"), "{covered:?}");
    let accepted = [
        "PR.DS-11", "RC.RP-03", "RC.RP-05", "PR.AA-01", "PR.AA-03", "PR.PS-05", "DE.CM-09",
    ];
    for id in &covered {
        assert!(accepted.contains(id), "{id} is not evidenced: {covered:?}");
    }
    assert!(v["compliance_score"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn partners_are_ranked_filtered_and_replaceable() {
    let (s, v) = post(
        "/collaboration/match",
        json!({"requirements": "We need a HIPAA compliance partner for a hospital group's healthcare IT", "top_k": 3}),
    );
    assert_eq!(s, 200, "{v}");
    let top = &v["matches"][0];
    assert!(
        top["skills"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "compliance-hipaa"),
        "{top}"
    );
    assert!(v["required_skills"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "compliance-hipaa"));
    let (_, v) = post(
        "/collaboration",
        json!({"requirements": "penetration testing", "country": "GB"}),
    );
    assert!(
        v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["country"] == "GB"),
        "{v}"
    );
    assert_eq!(v["sample_data"], true);

    // Replace the sample set with the caller's own partners (CSV), then match against them.
    let csv = "msp_id,name,city,region,country,skills,certifications,employees,profile\n\
               p-1,Harbour IT,Leeds,ENG,GB,helpdesk;microsoft-365,,12,Helpdesk and Microsoft 365 support for small offices.\n\
               p-2,Red Cell Security,Leeds,ENG,GB,penetration-testing;vulnerability-management,CREST,8,Penetration testing of web applications and networks.\n";
    let (s, v) = http("PUT", "/collaboration/partners", "text/csv", csv);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["count"], 2);
    assert_eq!(v["sample_data"], false);
    let (_, v) = post(
        "/collaboration/match",
        json!({"requirements": "We need a penetration test of our web application"}),
    );
    assert_eq!(v["matches"][0]["msp_id"], "p-2", "{v}");
    assert_eq!(v["sample_data"], false);
    let (s, v) = http(
        "PUT",
        "/collaboration/partners",
        "text/csv",
        "msp_id,name\n,nameless\n",
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "msp_id");
}

#[test]
fn validation_errors_are_422_naming_the_field() {
    for (path, body, field) in [
        (
            "/threat-intelligence/analyze",
            json!({"text": "  "}),
            "text",
        ),
        ("/threat-intelligence/analyze", json!({}), "text"),
        (
            "/threat-intelligence/analyze",
            json!({"text": "x", "top_k": 0}),
            "top_k",
        ),
        ("/market-intelligence/analyze", json!({"query": 5}), "query"),
        ("/nlp-query/ask", json!({"query": ""}), "query"),
        (
            "/compliance/check",
            json!({"framework": "nope", "policy_text": "We back up data."}),
            "framework",
        ),
        (
            "/collaboration/match",
            json!({"requirements": "x", "top_k": 500}),
            "top_k",
        ),
        ("/anomaly/detect", json!({"metric_type": "cpu"}), "values"),
        (
            "/anomaly/detect",
            json!({"values": [1, 2, 3, 4, 5, 6, 7, 8], "contamination": 2}),
            "contamination",
        ),
        (
            "/revenue/forecast",
            json!({"period_days": 90, "current_revenue": 1000}),
            "history",
        ),
        (
            "/revenue/forecast",
            json!({"history": [1, 2, 3], "horizon": 0}),
            "horizon",
        ),
        (
            "/resource/optimize",
            json!({"task_count": 3, "technician_count": 2}),
            "tasks",
        ),
        (
            "/resource/optimize",
            json!({"tasks": [{"id": "a", "skill": "net", "priority": 9, "estimated_hours": 1}], "technicians": [{"id": "t", "skills": ["net"]}]}),
            "tasks[0].priority",
        ),
        (
            "/client-health/predict",
            json!({"model_id": "no-such-model", "features": {"x": 1}}),
            "model_id",
        ),
        (
            "/client-health/predict",
            json!({"client_id": "c-9", "ticket_volume": 12, "satisfaction_score": 3}),
            "features",
        ),
        (
            "/client-health/train",
            json!({"records": [{"a": 1, "churn": "maybe"}], "target": "churn"}),
            "records[0].churn",
        ),
        (
            "/federated/train",
            json!({"privacy_epsilon": -1}),
            "privacy_epsilon",
        ),
        (
            "/federated/train",
            json!({"participating_msps": 1}),
            "participating_msps",
        ),
    ] {
        let (s, v) = post(path, body.clone());
        assert_eq!(s, 422, "{path} {body}: {v}");
        assert_eq!(v["field"], field, "{path} {body}: {v}");
    }
}

/// Training is bounded by the features the records encode to, checked before any fit: 30
/// columns of 50 levels seen 5 times each are 1,500 one-hot features (a 1,501² Hessian per
/// Newton step), refused with a 422 naming the field and the limit.
#[test]
fn client_health_training_is_bounded_by_features_before_it_starts() {
    let records: Vec<serde_json::Value> = (0..250)
        .map(|i| {
            let mut record = serde_json::Map::new();
            for c in 0..30 {
                record.insert(format!("col{c:02}"), json!(format!("level-{}", i % 50)));
            }
            record.insert("churn".into(), json!(if i % 2 == 0 { "yes" } else { "no" }));
            serde_json::Value::Object(record)
        })
        .collect();
    let started = std::time::Instant::now();
    let (s, v) = post(
        "/client-health/train",
        json!({"model_id": "too-wide", "records": records, "target": "churn"}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "records", "{v}");
    let message = v["error"].as_str().unwrap();
    assert!(
        message.contains("1500 features") && message.contains("at most 1024"),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused before fitting"
    );
}

#[test]
fn openapi_lists_the_agent_routes() {
    let (s, v) = http("GET", "/openapi.json", "application/json", "");
    assert_eq!(s, 200);
    for path in common::AGENT_POST_ROUTES {
        assert!(v["paths"][path]["post"].is_object(), "{path} missing");
    }
    assert!(v["paths"]["/federated/status"]["get"].is_object());
    assert!(v["paths"]["/client-health/models"]["get"].is_object());
    assert!(v["components"]["schemas"]["ThreatResponse"].is_object());
}

/// `msp-mesh score`: ids passed through, input order kept, a bad line answered with an error
/// without stopping the run.
#[test]
fn batch_scoring_keeps_order_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"id": "a", "query": "Excellent value, I love it."}"#,
            r#"{"id": "b", "query": ""}"#,
            "not json",
            r#"{"id": 7, "query": "Awful. It broke on day one."}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let status = mesh_command("score", &dir.path().join("partners.json"))
        .args(["--agent", "market-intelligence"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success());
    let lines: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["sentiment"], "POSITIVE");
    assert_eq!(lines[1]["id"], "b");
    assert_eq!(lines[1]["error"]["field"], "query");
    assert_eq!(lines[2]["error"]["error_type"], "bad_json");
    assert_eq!(lines[3]["id"], 7);
    assert_eq!(lines[3]["sentiment"], "NEGATIVE");
}

/// A daily-cycle CPU metric with two planted incidents: both are found, typed and placed.
#[test]
fn anomaly_detection_finds_planted_incidents() {
    let mut values: Vec<f64> = (0..200)
        .map(|t| {
            40.0 + 8.0 * (t as f64 * std::f64::consts::PI / 12.0).sin()
                + 0.5 * (t as f64 * 1.7).sin()
        })
        .collect();
    values[70] = 98.0;
    values[140] = 2.0;
    let (s, v) = post(
        "/anomaly/detect",
        json!({"metric_type": "cpu_percent", "values": values, "return_scores": true}),
    );
    assert_eq!(s, 200, "{v}");
    let found: Vec<(u64, &str)> = v["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["index"].as_u64().unwrap(), a["type"].as_str().unwrap()))
        .collect();
    assert_eq!(found, vec![(70, "spike"), (140, "drop")], "{v}");
    assert_eq!(v["anomaly_scores"].as_array().unwrap().len(), 200);
    assert_eq!(v["data_points_analyzed"], 200);
    assert!(v["model_used"]
        .as_str()
        .unwrap()
        .starts_with("isolation-forest@"));
    // Same request, same seed: the same scores.
    let (_, again) = post(
        "/anomaly",
        json!({"metric_type": "cpu_percent", "values": values, "return_scores": true}),
    );
    assert_eq!(again["anomaly_scores"], v["anomaly_scores"]);
}

/// A straight line of monthly revenue forecasts as its own continuation; a 3-point history
/// is answered by a labelled simple method.
#[test]
fn revenue_forecast_continues_a_known_trend() {
    let history: Vec<f64> = (0..30).map(|t| 10_000.0 + 250.0 * t as f64).collect();
    let (s, v) = post(
        "/revenue/forecast",
        json!({"history": history, "horizon": 6}),
    );
    assert_eq!(s, 200, "{v}");
    let months = v["monthly_forecast"].as_array().unwrap();
    assert_eq!(months.len(), 6);
    for (k, m) in months.iter().enumerate() {
        let truth = 10_000.0 + 250.0 * (30 + k) as f64;
        let got = m["revenue"].as_f64().unwrap();
        assert!(
            (got - truth).abs() / truth < 0.01,
            "period {k}: {got} vs {truth}"
        );
        assert!(
            m["lower_bound"].as_f64().unwrap() <= got && got <= m["upper_bound"].as_f64().unwrap()
        );
    }
    let projected: f64 = (30..36).map(|t| 10_000.0 + 250.0 * t as f64).sum();
    assert!((v["projected_revenue"].as_f64().unwrap() - projected).abs() / projected < 0.01);
    assert!(v["fallback"].is_null(), "{v}");
    let (s, short) = post(
        "/revenue",
        json!({"history": [100, 120, 140], "horizon": 2}),
    );
    assert_eq!(s, 200, "{short}");
    assert!(short["fallback"].is_string(), "{short}");
}

/// Two technicians, three tasks, solvable by hand: the network task can only go to alice,
/// both desktop tasks fit bob's 4 hours only if he is twice as fast (2 + 2 hours at
/// efficiency 2 = 2 hours), so every task is assigned, by the exact solver.
#[test]
fn resource_allocation_matches_a_hand_solution() {
    let (s, v) = post(
        "/resource/optimize",
        json!({
            "tasks": [
                {"id": "fw", "skill": "network", "priority": "critical", "estimated_hours": 3, "deadline_hours": 4},
                {"id": "pc1", "skill": "desktop", "priority": 2, "estimated_hours": 2},
                {"id": "pc2", "skill": "desktop", "priority": 1, "estimated_hours": 2}
            ],
            "technicians": [
                {"id": "alice", "skills": ["network", "desktop"], "capacity_hours": 4},
                {"id": "bob", "skills": ["desktop"], "capacity_hours": 4, "efficiency": 2.0}
            ]
        }),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["method"], "exact", "{v}");
    assert_eq!(v["tasks_assigned"], 3, "{v}");
    let plan: Vec<(String, Vec<String>)> = v["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut ids: Vec<String> = t["assigned_tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["task_id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            (t["technician_id"].as_str().unwrap().to_string(), ids)
        })
        .collect();
    assert!(plan.contains(&("alice".into(), vec!["fw".into()])), "{v}");
    assert!(
        plan.contains(&("bob".into(), vec!["pc1".into(), "pc2".into()])),
        "{v}"
    );
    // Bob does 4 estimated hours in 2: 2 hours saved.
    assert!(
        (v["time_saved_hours"].as_f64().unwrap() - 2.0).abs() < 1e-6,
        "{v}"
    );
}

/// The default model (trained on mlc_churn by `prepare`) ranks a customer with many service
/// calls and an international plan used for few calls above one with neither, and explains
/// it by those traits; a caller-trained model learns a
/// known rule and is saved as a version.
#[test]
fn client_health_default_and_trained_models() {
    let base = json!({
        "state": "KS", "account_length": 100, "area_code": "area_code_415",
        "voice_mail_plan": "no", "number_vmail_messages": 0,
        "total_day_minutes": 180.0, "total_day_calls": 100, "total_day_charge": 30.6,
        "total_eve_minutes": 200.0, "total_eve_calls": 100, "total_eve_charge": 17.0,
        "total_night_minutes": 200.0, "total_night_calls": 100, "total_night_charge": 9.0,
        "total_intl_minutes": 10.0, "total_intl_calls": 4, "total_intl_charge": 2.7
    });
    // The traits that go with churn in `mlc_churn`: an international plan used for few
    // calls, and many calls to customer service.
    let mut risky = base.clone();
    risky["international_plan"] = json!("yes");
    risky["total_intl_calls"] = json!(2);
    risky["number_customer_service_calls"] = json!(5);
    let mut steady = base.clone();
    steady["international_plan"] = json!("no");
    steady["number_customer_service_calls"] = json!(1);
    let (s, r) = post(
        "/client-health/predict",
        json!({"client_id": "c-1", "features": risky, "monthly_revenue": 100.0}),
    );
    assert_eq!(s, 200, "{r}");
    let (_, q) = post("/client-health", json!({"features": steady}));
    let (pr, pq) = (
        r["churn_risk"].as_f64().unwrap(),
        q["churn_risk"].as_f64().unwrap(),
    );
    assert!(pr > 0.5 && pq < 0.2, "{pr} {pq}");
    assert!(r["model_cv_auc"].as_f64().unwrap() > 0.75, "{r}");
    assert!(r["model_used"]
        .as_str()
        .unwrap()
        .starts_with("client-health/mlc-churn@v"));
    assert!((r["predictions"]["revenue_at_risk"].as_f64().unwrap() - 100.0 * pr).abs() < 1e-9);
    // The explanation names the risky traits: every column that raises the log-odds by more
    // than 0.5 is one of them, and the international plan is among those.
    let raising: Vec<&str> = r["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["contribution"].as_f64().unwrap() > 0.5)
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    let traits = [
        "international_plan",
        "total_intl_calls",
        "number_customer_service_calls",
    ];
    assert!(
        raising.contains(&"international_plan") && raising.iter().all(|f| traits.contains(f)),
        "{raising:?}"
    );

    let records: Vec<Value> = (0..120)
        .map(|i| json!({"tickets": i % 12, "tier": if i % 4 == 0 {"gold"} else {"bronze"}, "left": if i % 12 >= 8 {"yes"} else {"no"}}))
        .collect();
    let (s, t) = post(
        "/client-health/train",
        json!({"records": records, "target": "left", "model_id": "http-test"}),
    );
    assert_eq!(s, 200, "{t}");
    assert!(t["cv_auc"].as_f64().unwrap() > 0.95, "{t}");
    let version = t["version"].as_u64().unwrap();
    let (s, p) = post(
        "/client-health/predict",
        json!({"model_id": "http-test", "version": version, "features": {"tickets": 11, "tier": "bronze"}}),
    );
    assert_eq!(s, 200, "{p}");
    assert!(p["churn_risk"].as_f64().unwrap() > 0.9, "{p}");
    let (_, list) = http("GET", "/client-health/models", "application/json", "");
    assert!(
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model_id"] == "http-test"),
        "{list}"
    );
}

/// A short federated run spends no more than the budget asked for, learns (held-out accuracy
/// above the untrained model's), and shows up in the status with its epsilon.
#[test]
fn federated_training_keeps_to_its_privacy_budget() {
    let (s, v) = post(
        "/federated/train",
        json!({"participating_msps": 3, "privacy_epsilon": 2.0, "rounds": 3, "local_steps": 3, "seed": 7}),
    );
    assert_eq!(s, 200, "{v}");
    let spent = v["privacy_budget_used"].as_f64().unwrap();
    assert!(
        spent <= 2.0 && spent > 1.8,
        "calibrated to the budget: {spent}"
    );
    assert!(
        v["new_accuracy"].as_f64().unwrap() > v["previous_accuracy"].as_f64().unwrap(),
        "{v}"
    );
    // Churners ranked above non-churners well beyond chance (0.5) on held-out customers.
    assert!(v["new_auc"].as_f64().unwrap() > 0.7, "{v}");
    assert_eq!(v["round_number"], 3);
    assert_eq!(v["records_per_msp"].as_array().unwrap().len(), 3);
    let (s, status) = http("GET", "/federated/status", "application/json", "");
    assert_eq!(s, 200);
    assert!(status["runs"].as_u64().unwrap() >= 1);
    assert!(status["total_epsilon_spent"].as_f64().unwrap() >= spent);
}

/// With `Accept: application/x-ndjson` a run streams one line per round (round 0 is the
/// untrained model), then the stored answer; the lines are the answer's own `history`, the
/// answer is the one the plain route gives for the same seed, a retry with the same
/// `Idempotency-Key` gets the stored answer alone, and a wrong request is a plain 422.
#[test]
fn federated_rounds_stream_as_they_end() {
    let run = json!({"participating_msps": 3, "privacy_epsilon": 1.0, "rounds": 4, "local_steps": 2, "seed": 5});
    let stream = |key: &str| {
        let (status, head, body) = server().request(
            "POST",
            "/federated/train",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/x-ndjson"),
                ("Idempotency-Key", key),
            ],
            run.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{head}{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/x-ndjson"),
            "{head}"
        );
        match body {
            // One line parses as one JSON document.
            Value::String(text) => text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>(),
            one => vec![one],
        }
    };
    let lines = stream("stream-once");
    assert_eq!(lines.len(), 6, "rounds 0-4, then the answer: {lines:?}");
    let answer = &lines[5]["result"];
    assert_eq!(answer["history"], json!(lines[..5]), "{answer}");
    for (r, line) in lines[..5].iter().enumerate() {
        assert_eq!(line["round"], r);
    }
    assert!(answer["result_id"].is_string(), "stored: {answer}");
    let (s, plain) = post("/federated/train", run.clone());
    assert_eq!(s, 200, "{plain}");
    assert_eq!(plain["history"], answer["history"]);
    assert_eq!(plain["privacy_budget_used"], answer["privacy_budget_used"]);

    let again = stream("stream-once");
    assert_eq!(again.len(), 1, "the stored answer alone: {again:?}");
    assert_eq!(again[0]["result"], *answer);

    let (status, _, body) = server().request(
        "POST",
        "/federated/train",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/x-ndjson"),
        ],
        json!({"rounds": 0}).to_string().as_bytes(),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "rounds", "{body}");
}

/// Without a `seed` the DP noise and the masks come from the operating system's randomness:
/// two runs differ and the guarantee holds. With one, runs repeat exactly and the response
/// says the guarantee does not hold.
#[test]
fn federated_noise_is_unpredictable_unless_seeded() {
    let run = |seed: Option<u64>| {
        let mut request =
            json!({"participating_msps": 3, "privacy_epsilon": 1.0, "rounds": 2, "local_steps": 2});
        if let Some(seed) = seed {
            request["seed"] = json!(seed);
        }
        let (s, v) = post("/federated/train", request);
        assert_eq!(s, 200, "{v}");
        v
    };
    let (a, b) = (run(None), run(None));
    for v in [&a, &b] {
        assert_eq!(v["privacy_guarantee_holds"], true, "{v}");
        assert!(v["privacy_caveat"].is_null(), "{v}");
    }
    assert_ne!(
        a["history"], b["history"],
        "two unseeded runs drew the same noise"
    );
    let (c, d) = (run(Some(11)), run(Some(11)));
    assert_eq!(c["history"], d["history"], "a seed reproduces the run");
    assert_eq!(c["privacy_guarantee_holds"], false, "{c}");
    assert!(
        c["privacy_caveat"].as_str().unwrap().contains("seed"),
        "{c}"
    );
}

/// The data routes take bodies past axum's 2 MB default: 150,000 values (about 2.8 MB) reach
/// the agent, which names the limit they exceed.
#[test]
fn data_routes_accept_large_bodies_and_name_the_limit() {
    let values: Vec<f64> = (0..150_000).map(|i| 1000.123456789 + i as f64).collect();
    let body = json!({ "values": values });
    assert!(body.to_string().len() > 2 * 1024 * 1024);
    let (s, v) = post("/anomaly/detect", body);
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "values", "{v}");
}
