//! The cloud providers against the stand-in server (their wire formats over HTTP through the
//! real AWS SDK clients): answers parsed, retries with backoff on throttling, server errors and
//! slow answers, no retry on a rejection, the circuit breaker, and through the real server
//! every fallback policy of the market and NLP-query agents, with the fallback visible.

mod common;
#[path = "common/standin.rs"]
mod standin;

use std::time::Duration;

use common::Server;
use mesh_cloud::{Bedrock, BedrockApi, CloudError, Comprehend, Resilience, COMPREHEND_MODEL};
use mesh_standin::{Fault, Script, StandIn};
use serde_json::{json, Value};
use standin::start_standin;

fn script() -> Script {
    Script {
        sentiment: "POSITIVE".into(),
        scores: [0.91, 0.02, 0.05, 0.02],
        entities: vec![
            ("Contoso Ltd".into(), "ORGANIZATION".into(), 0.98),
            ("$4.2 million".into(), "QUANTITY".into(), 0.95),
        ],
        key_phrases: vec![("managed security services".into(), 0.99)],
        completion: "Enable multi-factor authentication and restrict RDP to a VPN.".into(),
        gone_connections: vec![],
    }
}

fn fast() -> Resilience {
    Resilience {
        attempt_timeout: Duration::from_millis(400),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        breaker_threshold: 2,
        breaker_cooldown: Duration::from_millis(300),
        budget: Duration::from_secs(5),
    }
}

async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_comprehend::config::Credentials::new(
            "AKIDSTANDIN",
            "standin-secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

const TEXT: &str =
    "Contoso Ltd grew its managed security services revenue by $4.2 million this quarter.";

#[tokio::test]
async fn comprehend_answers_retries_and_breaks_the_circuit() {
    let (url, standin) = start_standin();
    *standin.script.lock().unwrap() = script();
    let comprehend = Comprehend::new(&sdk_config(&url).await, fast());

    let ok = comprehend.analyze(TEXT).await.unwrap();
    assert_eq!(ok.attempts, 1);
    let a = &ok.value;
    assert_eq!((a.sentiment.as_str(), a.positive), ("POSITIVE", 0.91));
    assert_eq!(a.entities[0].text, "Contoso Ltd");
    assert_eq!(a.entities[0].entity_type, "ORGANIZATION");
    assert_eq!((a.entities[1].begin, a.entities[1].end), (58, 70));
    assert_eq!(a.key_phrases[0].text, "managed security services");
    for op in ["DetectSentiment", "DetectEntities", "DetectKeyPhrases"] {
        let calls = standin.calls_of(&format!("Comprehend.{op}"));
        assert_eq!(calls.len(), 1, "{op}");
        assert_eq!(calls[0].body["Text"], TEXT);
        assert_eq!(calls[0].body["LanguageCode"], "en");
    }

    // Throttled once: the retry answers.
    standin.inject(&[Fault::Throttle]);
    let retried = comprehend.analyze(TEXT).await.unwrap();
    assert_eq!(retried.attempts, 2);

    // A slow answer past the attempt timeout: retried.
    standin.inject(&[Fault::SlowMs(1500)]);
    assert_eq!(comprehend.analyze(TEXT).await.unwrap().attempts, 2);

    // Server errors on every attempt of two calls: the circuit opens and fails fast.
    standin.inject(&[Fault::ServerError; 18]);
    for _ in 0..2 {
        let e = comprehend.analyze(TEXT).await.unwrap_err();
        assert!(matches!(e, CloudError::Server { .. }), "{e}");
    }
    let before = standin.calls.lock().unwrap().len();
    let e = comprehend.analyze(TEXT).await.unwrap_err();
    assert!(matches!(e, CloudError::CircuitOpen { .. }), "{e}");
    assert_eq!(
        standin.calls.lock().unwrap().len(),
        before,
        "no call while open"
    );
    assert!(comprehend.circuit_open());
    standin.faults.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        comprehend.analyze(TEXT).await.is_ok(),
        "half-open call closes it"
    );

    // An unreadable answer is not retried into success; a rejection is not retried at all.
    standin.inject(&[Fault::Garbage, Fault::Garbage, Fault::Garbage]);
    let e = comprehend.analyze(TEXT).await.unwrap_err();
    assert!(matches!(e, CloudError::BadResponse { .. }), "{e}");
    standin.faults.lock().unwrap().clear();
    let before = standin.calls_of("Comprehend.DetectSentiment").len();
    let e = comprehend.analyze("").await.unwrap_err();
    assert!(matches!(e, CloudError::Rejected { .. }), "{e}");
    assert_eq!(
        standin.calls_of("Comprehend.DetectSentiment").len(),
        before + 1
    );
}

#[tokio::test]
async fn bedrock_converse_and_invoke_model() {
    let (url, standin) = start_standin();
    *standin.script.lock().unwrap() = script();
    let config = sdk_config(&url).await;
    for (api, operation) in [
        (BedrockApi::Converse, "Bedrock.Converse"),
        (BedrockApi::InvokeModel, "Bedrock.InvokeModel"),
    ] {
        let bedrock = Bedrock::new(
            &config,
            "anthropic.claude-3-haiku-20240307-v1:0",
            api,
            fast(),
        );
        standin.inject(&[Fault::Throttle]);
        let out = bedrock
            .generate(
                "Answer from the context.",
                "How do I stop RDP brute force?",
                200,
            )
            .await
            .unwrap();
        assert_eq!(out.value.text, script().completion);
        assert_eq!(out.attempts, 2, "throttled once, then answered");
        assert!(out.value.output_tokens > 0);
        let calls = standin.calls_of(operation);
        assert_eq!(calls.len(), 2);
        let sent = calls[1].body.to_string();
        assert!(sent.contains("How do I stop RDP brute force?"), "{sent}");
        assert!(sent.contains("Answer from the context."), "{sent}");
    }
}

/// A server whose market, NLP-query and compliance agents use the stand-in under the given
/// policies.
fn server_with(url: &str, market: &str, nlp: &str, compliance: &str) -> Server {
    server_with_timeouts(url, market, nlp, compliance, &["--cloud-timeout", "2s"])
}

/// [`server_with`] with its own cloud and request timeouts.
fn server_with_timeouts(
    url: &str,
    market: &str,
    nlp: &str,
    compliance: &str,
    timeouts: &[&str],
) -> Server {
    let partners = std::env::temp_dir().join(format!(
        "mesh-cloud-partners-{}-{market}.json",
        std::process::id()
    ));
    std::env::set_var("AWS_ENDPOINT_URL_COMPREHEND", url);
    std::env::set_var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url);
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDSTANDIN");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "standin-secret");
    std::env::set_var("AWS_REGION", "us-east-1");
    let mut args = vec![
        "--state-db",
        ":memory:",
        "--market-provider",
        market,
        "--nlp-query-provider",
        nlp,
        "--compliance-provider",
        compliance,
        "--cloud-backoff",
        "10ms",
    ];
    args.extend_from_slice(timeouts);
    Server::start(&partners, &args)
}

/// A cloud service that hangs: each call gives up when its budget ends, well inside the
/// request's timeout (not after three 10 s attempts), and the local model answers with the
/// fallback's reason.
#[test]
fn a_hung_cloud_service_falls_back_inside_the_request_deadline() {
    let (url, standin) = start_standin();
    *standin.script.lock().unwrap() = script();
    let s = server_with_timeouts(
        &url,
        "cloud-first",
        "local",
        "local",
        &[
            "--cloud-timeout",
            "10s",
            "--cloud-budget",
            "1s",
            "--request-timeout",
            "4s",
        ],
    );
    standin.inject(&[Fault::SlowMs(30_000); 3]);
    let started = std::time::Instant::now();
    let (status, v) = s.post("/market-intelligence/analyze", &json!({"query": TEXT}));
    assert_eq!(status, 200, "{v}");
    assert!(
        v["model_used"]
            .as_str()
            .unwrap()
            .contains("sentiment-minilm"),
        "{v}"
    );
    assert!(
        v["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{v}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// The body of the stand-in's latest Converse call, as text.
fn last_converse_body(standin: &StandIn) -> String {
    standin
        .calls_of("Bedrock.Converse")
        .last()
        .unwrap()
        .body
        .to_string()
}

/// A short policy: some CIS v8 safeguards covered, most not.
const POLICY: &str = "All laptops and servers use full-disk encryption. Administrators must use \
    multi-factor authentication for every remote login. Backups of business data run nightly and \
    restores are tested every quarter. We keep an inventory of all enterprise hardware assets.";

fn check(s: &Server) -> Value {
    let (status, v) = s.post(
        "/compliance/check",
        &json!({"framework": "cis-v8", "policy_text": POLICY}),
    );
    assert_eq!(status, 200, "{v}");
    v
}

/// The template's figures are the response's own: covered / total controls, the score.
fn assert_template_matches_findings(v: &Value) {
    let controls = v["controls"].as_array().unwrap();
    let covered = controls.iter().filter(|c| c["covered"] == true).count();
    let text = v["explanation"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "{covered} of {} controls have evidence",
            controls.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "weighted score {:.1}",
            v["compliance_score"].as_f64().unwrap()
        )),
        "{text}"
    );
}

const QUESTION: &str = "How can attackers use remote desktop protocol to move laterally?";

#[test]
fn every_policy_answers_and_shows_its_fallbacks() {
    let (url, standin) = start_standin();
    *standin.script.lock().unwrap() = script();
    let s = server_with(&url, "cloud-first", "local-first:1.0", "cloud-first");
    let market = |s: &Server| {
        let (status, v) = s.post("/market-intelligence/analyze", &json!({"query": TEXT}));
        assert_eq!(status, 200, "{v}");
        v
    };
    let ask = |s: &Server| {
        let (status, v) = s.post("/nlp-query/ask", &json!({"query": QUESTION}));
        assert_eq!(status, 200, "{v}");
        v
    };

    // cloud-first: Comprehend answers.
    let v = market(&s);
    assert_eq!(v["model_used"], COMPREHEND_MODEL);
    assert_eq!(v["sentiment"], "POSITIVE");
    assert!(
        (v["sentiment_score"].as_f64().unwrap() - 0.91).abs() < 1e-6,
        "{v}"
    );
    assert_eq!(v["provider"]["answered_by"], "cloud");
    assert_eq!(v["provider"]["policy"], "cloud-first");
    assert_eq!(v["key_phrases"][0], "managed security services");
    assert!(v["fallback_reason"].is_null());
    // cloud-first, Comprehend failing on every attempt: the local head answers, and says why.
    standin.inject(&[Fault::ServerError; 9]);
    let v = market(&s);
    assert!(
        v["model_used"]
            .as_str()
            .unwrap()
            .contains("sentiment-minilm"),
        "{v}"
    );
    assert_eq!(v["provider"]["answered_by"], "local");
    let reason = v["fallback_reason"].as_str().unwrap();
    assert!(
        reason.contains("server error") && reason.contains("local model"),
        "{reason}"
    );

    // cloud-first compliance: Bedrock explains the computed findings, and only those.
    let v = check(&s);
    assert_eq!(v["explanation_method"], "bedrock-generation", "{v}");
    assert_eq!(v["explanation"], script().completion);
    assert!(v["model_used"]
        .as_str()
        .unwrap()
        .starts_with("anthropic.claude-3-haiku"));
    assert_eq!(v["provider"]["answered_by"], "cloud");
    let prompt = last_converse_body(&standin);
    let first_gap = v["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["covered"] == false)
        .unwrap();
    assert!(
        prompt.contains(first_gap["id"].as_str().unwrap()),
        "the prompt names the gaps"
    );
    assert!(prompt.contains(&format!("{:.1}", v["compliance_score"].as_f64().unwrap())));
    // Bedrock failing on every attempt: the template explains, and the response says why.
    standin.inject(&[Fault::ServerError; 3]);
    let v = check(&s);
    assert_eq!(v["explanation_method"], "template", "{v}");
    assert!(
        v["fallback_reason"]
            .as_str()
            .unwrap()
            .contains("server error"),
        "{v}"
    );
    assert_template_matches_findings(&v);

    // local-first with threshold 1.0: retrieval confidence is always below it, so Bedrock writes.
    let v = ask(&s);
    assert_eq!(v["answer_method"], "bedrock-generation", "{v}");
    assert_eq!(v["answer"], script().completion);
    assert!(v["model_used"]
        .as_str()
        .unwrap()
        .starts_with("anthropic.claude-3-haiku"));
    assert!(v["provider"]["upgrade_reason"]
        .as_str()
        .unwrap()
        .contains("below"));
    let prompt = last_converse_body(&standin);
    let first_source = v["sources"][0].as_str().unwrap();
    assert!(prompt.contains(QUESTION));
    assert!(!first_source.is_empty());
    // Bedrock throttling on every attempt: the local (extractive) answer, with the reason.
    standin.inject(&[Fault::Throttle; 3]);
    let v = ask(&s);
    assert_eq!(v["answer_method"], "extractive");
    assert!(
        v["fallback_reason"].as_str().unwrap().contains("throttled"),
        "{v}"
    );
    drop(s);

    // compare: the local answer, the cloud's beside it; a slow cloud answer past the timeout
    // shows as the comparison's error.
    let s = server_with(&url, "compare", "compare", "compare");
    let v = market(&s);
    assert!(v["model_used"]
        .as_str()
        .unwrap()
        .contains("sentiment-minilm"));
    assert_eq!(v["comparison"]["sentiment"], "POSITIVE");
    assert_eq!(v["comparison"]["model_used"], COMPREHEND_MODEL);
    assert!(v["comparison"]["agrees_with_local"].is_boolean());
    let v = ask(&s);
    assert_eq!(v["answer_method"], "extractive");
    assert_eq!(v["comparison"]["answer"], script().completion);
    let v = check(&s);
    assert_eq!(v["explanation_method"], "template");
    assert_eq!(v["comparison"]["text"], script().completion);
    assert_template_matches_findings(&v);
    standin.inject(&[Fault::SlowMs(3000); 3]);
    let v = ask(&s);
    let error = v["comparison"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not answer within"), "{v}");
    assert_eq!(v["answer_method"], "extractive");
    drop(s);

    // local (the default): no cloud call at all.
    let calls = standin.calls.lock().unwrap().len();
    let s = server_with(&url, "local", "local", "local");
    let v: Value = market(&s);
    assert_eq!(v["provider"]["policy"], "local");
    ask(&s);
    let v = check(&s);
    assert_eq!(v["explanation_method"], "template");
    assert_eq!(v["provider"]["policy"], "local");
    assert_eq!(standin.calls.lock().unwrap().len(), calls);
}
