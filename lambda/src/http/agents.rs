//! The agents' routes (contract paths and the short aliases) and the partner directory routes.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, StringRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_agents::anomaly::{AnomalyRequest, AnomalyResponse};
use mesh_agents::client_health::{PredictRequest, PredictResponse, TrainRequest, TrainResponse};
use mesh_agents::compliance::{ComplianceRequest, ComplianceResponse};
use mesh_agents::federated::{
    FederatedAgent, FederatedRequest, FederatedResponse, FederatedStatus,
};
use mesh_agents::loader::Loaded;
use mesh_agents::market::{MarketRequest, MarketResponse};
use mesh_agents::nlp_query::{AskRequest, AskResponse};
use mesh_agents::partners::{parse_partners, MatchRequest, MatchResponse, Partner};
use mesh_agents::resource::{OptimizeRequest, OptimizeResponse};
use mesh_agents::revenue::{ForecastRequest, ForecastResponse};
use mesh_agents::threat::{ThreatRequest, ThreatResponse};
use mesh_agents::{Agent, AgentKind};
use mesh_core::agents::AgentAnswer;
use mesh_core::error::ErrorBody;
use serde::Serialize;
use serde_json::Value;

use crate::http::error::ApiError;
use crate::http::idempotency::{claim, Claim, ClaimGuard, Deadline, Replay, IDEMPOTENCY_KEY_FIELD};
use crate::http::progress::{self, ProgressLines};
use crate::http::state::AppState;

/// Runs one request through a loaded agent and records the answer (with its `result_id`,
/// event and alerts) before returning it. With an `Idempotency-Key` ([`Replay`]) a stored
/// answer is returned as it is; work that runs past the request's [`Deadline`] is answered
/// 504 and stores nothing.
pub async fn run_agent<A: Agent>(
    state: &AppState,
    agent: &Loaded<A>,
    calls: Call,
    body: Result<Json<A::Request>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    answer_once(state, calls, state.mesh.run(agent, request)).await
}

/// Computes an answer with `work` and records it, once per `Idempotency-Key`: a retry gets
/// the answer stored for the first try, a try while another runs waits for its answer (409
/// if it is not there by the deadline), and work past the [`Deadline`] is a 504 that stores
/// nothing.
async fn answer_once<E: Into<ApiError>>(
    state: &AppState,
    Call(Replay(replay), deadline): Call,
    work: impl std::future::Future<Output = Result<AgentAnswer, E>>,
) -> Result<Json<Value>, ApiError> {
    // Held until the answer is stored (or the work fails or is dropped).
    let mut _claim = None;
    if let Some(id) = &replay {
        match first_try(state, id, deadline).await? {
            FirstTry::Answered(stored) => return Ok(Json(stored)),
            FirstTry::Ours(guard) => _claim = Some(guard),
        }
    }
    let answer = within(state, deadline, work).await?.map_err(Into::into)?;
    match replay {
        None => Ok(Json(state.mesh.record(answer).await?)),
        Some(id) => match state.mesh.record_as(answer, id.clone()).await {
            Ok(stored) => Ok(Json(stored)),
            // A concurrent try stored it first: its answer is the one.
            Err(e) => stored_answer(state, &id)
                .await?
                .map(Json)
                .ok_or_else(|| e.into()),
        },
    }
}

/// What a try with an `Idempotency-Key` finds.
enum FirstTry {
    /// The answer an earlier try stored.
    Answered(Value),
    /// No answer yet, and this try holds the claim to compute it.
    Ours(ClaimGuard),
}

/// How often a try waiting for a concurrent one looks for its answer.
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The stored answer of `result_id`, or the claim to compute it; while another try holds the
/// claim, waits for its answer until the deadline (then 409).
async fn first_try(
    state: &AppState,
    result_id: &str,
    deadline: Option<Deadline>,
) -> Result<FirstTry, ApiError> {
    let hold = state.protection.request_timeout + crate::http::middleware::RECORD_GRACE;
    loop {
        if let Some(stored) = stored_answer(state, result_id).await? {
            return Ok(FirstTry::Answered(stored));
        }
        let (user_state, id) = (Arc::clone(&state.mesh.user_state), result_id.to_string());
        let claimed = tokio::task::spawn_blocking(move || claim(&user_state, &id, hold))
            .await
            .map_err(|e| ApiError::unavailable(format!("claiming the Idempotency-Key: {e}")))?
            .map_err(|e| ApiError::unavailable(format!("claiming the Idempotency-Key: {e}")))?;
        match claimed {
            Claim::Ours(guard) => {
                // The first try may have stored its answer and released between the looks.
                if let Some(stored) = stored_answer(state, result_id).await? {
                    return Ok(FirstTry::Answered(stored));
                }
                return Ok(FirstTry::Ours(guard));
            }
            Claim::Busy => {}
        }
        let now = std::time::Instant::now();
        if deadline.is_some_and(|Deadline(at)| now + CLAIM_POLL >= at) {
            return Err(ApiError::InProgress {
                field: IDEMPOTENCY_KEY_FIELD,
                message:
                    "a request with this Idempotency-Key is still running; retry to get its answer"
                        .into(),
            });
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
}

/// Runs `work` until the request's deadline, if it has one. Past it, `work` is dropped (its
/// blocking part stops at its next check, [`mesh_agents::cancel`]) and the answer is a 504
/// that says nothing was stored.
async fn within<T>(
    state: &AppState,
    deadline: Option<Deadline>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, ApiError> {
    let Some(Deadline(at)) = deadline else {
        return Ok(work.await);
    };
    tokio::time::timeout_at(at.into(), work).await.map_err(|_| {
        state
            .metrics
            .timeouts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::Timeout("the agent ran past the request's deadline; nothing was stored".into())
    })
}

/// What an agent handler takes besides its body: the replay id and the deadline.
pub struct Call(Replay, Option<Deadline>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let replay =
            <Replay as axum::extract::FromRequestParts<S>>::from_request_parts(parts, state)
                .await?;
        let deadline = parts.extensions.get::<Deadline>().copied();
        Ok(Self(replay, deadline))
    }
}

/// The answer stored under `result_id`, if any.
async fn stored_answer(state: &AppState, result_id: &str) -> Result<Option<Value>, ApiError> {
    let id = result_id.to_string();
    let stored = state
        .mesh
        .blocking(move |store| store.get_result(&id))
        .await?;
    Ok(stored.map(|r| r.data))
}

type Body<T> = Result<Json<T>, JsonRejection>;
/// An agent's answer as stored: its response fields plus `result_id`.
type Answer = Result<Json<Value>, ApiError>;
type Plain<T> = Result<Json<T>, ApiError>;

/// Analyses text or a raw e-mail for threats: indicators, category, ATT&CK techniques, mitigations, severity.
#[utoipa::path(post, path = "/threat-intelligence/analyze", request_body = ThreatRequest,
    responses((status = 200, body = ThreatResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn threat(State(s): State<Arc<AppState>>, call: Call, body: Body<ThreatRequest>) -> Answer {
    run_agent(&s, &s.agents.threat, call, body).await
}

/// Sentiment, market impact and entities of market text.
#[utoipa::path(post, path = "/market-intelligence/analyze", request_body = MarketRequest,
    responses((status = 200, body = MarketResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn market(State(s): State<Arc<AppState>>, call: Call, body: Body<MarketRequest>) -> Answer {
    run_agent(&s, &s.agents.market, call, body).await
}

/// Answers a question from the knowledge base (ATT&CK, CWE, the project's docs).
#[utoipa::path(post, path = "/nlp-query/ask", request_body = AskRequest,
    responses((status = 200, body = AskResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn ask(State(s): State<Arc<AppState>>, call: Call, body: Body<AskRequest>) -> Answer {
    run_agent(&s, &s.agents.nlp_query, call, body).await
}

/// Ranks partner MSPs for a caller's requirements.
#[utoipa::path(post, path = "/collaboration/match", request_body = MatchRequest,
    responses((status = 200, body = MatchResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn match_partners(
    State(s): State<Arc<AppState>>,
    call: Call,
    body: Body<MatchRequest>,
) -> Answer {
    run_agent(&s, &s.agents.partners, call, body).await
}

/// Scores a policy against a control catalogue.
#[utoipa::path(post, path = "/compliance/check", request_body = ComplianceRequest,
    responses((status = 200, body = ComplianceResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn compliance(
    State(s): State<Arc<AppState>>,
    call: Call,
    body: Body<ComplianceRequest>,
) -> Answer {
    run_agent(&s, &s.agents.compliance, call, body).await
}

/// The partner directory.
/// Anomalies in the caller's series or points (isolation forest).
#[utoipa::path(post, path = "/anomaly/detect", request_body = AnomalyRequest,
    responses((status = 200, body = AnomalyResponse), (status = 422, body = ErrorBody)))]
async fn anomaly(State(s): State<Arc<AppState>>, call: Call, body: Body<AnomalyRequest>) -> Answer {
    run_agent(&s, &s.numeric.anomaly, call, body).await
}

/// Revenue forecast from the caller's history (AutoETS ported from augurs, augurs MSTL, seasonal ETS).
#[utoipa::path(post, path = "/revenue/forecast", request_body = ForecastRequest,
    responses((status = 200, body = ForecastResponse), (status = 422, body = ErrorBody)))]
async fn revenue(
    State(s): State<Arc<AppState>>,
    call: Call,
    body: Body<ForecastRequest>,
) -> Answer {
    run_agent(&s, &s.numeric.revenue, call, body).await
}

/// Optimal assignment of the caller's tasks to technicians (MILP, greedy past a limit).
#[utoipa::path(post, path = "/resource/optimize", request_body = OptimizeRequest,
    responses((status = 200, body = OptimizeResponse), (status = 422, body = ErrorBody)))]
async fn resource(
    State(s): State<Arc<AppState>>,
    call: Call,
    body: Body<OptimizeRequest>,
) -> Answer {
    run_agent(&s, &s.numeric.resource, call, body).await
}

/// Churn probability of one client from a trained model (default: `mlc-churn`).
#[utoipa::path(post, path = "/client-health/predict", request_body = PredictRequest,
    responses((status = 200, body = PredictResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn client_health(
    State(s): State<Arc<AppState>>,
    call: Call,
    body: Body<PredictRequest>,
) -> Answer {
    run_agent(&s, &s.numeric.client_health, call, body).await
}

/// Trains (and saves as a new version) a churn model on the caller's records.
#[utoipa::path(post, path = "/client-health/train", request_body = TrainRequest,
    responses((status = 200, body = TrainResponse), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn client_health_train(
    State(s): State<Arc<AppState>>,
    call: Call,
    body: Body<TrainRequest>,
) -> Answer {
    let Json(request) = body?;
    let agent = loaded(&s.numeric.client_health)?;
    // With an Idempotency-Key a retry gets the first try's model, not another version.
    let stored = answer_once(&s, call, async {
        let trained = agent.train(request).await?;
        Ok::<_, ApiError>(AgentAnswer::new(AgentKind::ClientHealth, &trained)?)
    })
    .await?;
    let state = Arc::clone(&s.mesh);
    tokio::task::spawn_blocking(move || state.record_agent_states("client-health model trained"));
    Ok(stored)
}

/// Every saved client-health model and its versions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelVersions>,
}

/// One model id and its versions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelVersions {
    pub model_id: String,
    pub versions: Vec<u32>,
}

/// The saved client-health models.
#[utoipa::path(get, path = "/client-health/models", responses((status = 200, body = ModelList), (status = 503, body = ErrorBody)))]
async fn client_health_models(State(s): State<Arc<AppState>>) -> Plain<ModelList> {
    let agent = loaded(&s.numeric.client_health)?;
    let models = agent
        .models()
        .await?
        .into_iter()
        .map(|(model_id, versions)| ModelVersions { model_id, versions })
        .collect();
    Ok(Json(ModelList { models }))
}

/// A federated training run with differential privacy over simulated MSPs. With `Accept:
/// application/x-ndjson` each round's held-out accuracy, AUC and privacy spent arrive as a
/// line as the round ends, then `{"result": answer}` ([`crate::http::progress`]).
#[utoipa::path(post, path = "/federated/train", request_body = FederatedRequest,
    responses((status = 200, body = FederatedResponse),
        (status = 200, content_type = "application/x-ndjson",
            description = "with Accept: application/x-ndjson: one RoundSummary line per round, then {\"result\": FederatedResponse} or {\"error\": ErrorBody, \"status\": code}"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn federated(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    call: Call,
    body: Body<FederatedRequest>,
) -> Result<Response, ApiError> {
    if !progress::wants_progress(&headers) {
        return Ok(run_agent(&s, &s.numeric.federated, call, body)
            .await?
            .into_response());
    }
    let Json(request) = body?;
    let agent = Arc::clone(loaded(&s.numeric.federated)?);
    FederatedAgent::check(&request)?;
    let (lines, response) = ProgressLines::open();
    let send = lines.progress();
    tokio::spawn(async move {
        let work = async {
            let answer = agent
                .handle_observed(request, move |round| send(&serde_json::json!(round)))
                .await?;
            AgentAnswer::new(AgentKind::FederatedLearning, &answer)
        };
        // A client that leaves drops the work; its rounds stop at the next check.
        tokio::select! {
            answer = answer_once(&s, call, work) => lines.finish(answer.map(|Json(v)| v)),
            () = lines.closed() => {}
        }
    });
    Ok(response)
}

/// The federated runs so far and the privacy budget they spent together.
#[utoipa::path(get, path = "/federated/status", responses((status = 200, body = FederatedStatus), (status = 503, body = ErrorBody)))]
async fn federated_status(State(s): State<Arc<AppState>>) -> Plain<FederatedStatus> {
    Ok(Json(loaded(&s.numeric.federated)?.status().await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerList {
    pub partners: Vec<Partner>,
    pub count: usize,
    /// True while the directory is the shipped sample set.
    pub sample_data: bool,
}

/// Lists the partner directory.
#[utoipa::path(get, path = "/collaboration/partners", responses((status = 200, body = PartnerList), (status = 503, body = ErrorBody)))]
async fn list_partners(State(s): State<Arc<AppState>>) -> Plain<PartnerList> {
    let agent = loaded(&s.agents.partners)?;
    let (partners, sample_data) = agent.list().await?;
    Ok(Json(PartnerList {
        count: partners.len(),
        partners,
        sample_data,
    }))
}

/// Replaces the partner directory with the body (JSON array / `{partners: [...]}`, or CSV with `Content-Type: text/csv`).
#[utoipa::path(put, path = "/collaboration/partners", request_body(content = Vec<Partner>, description = "JSON partners or CSV"),
    responses((status = 200, body = PartnerList), (status = 422, body = ErrorBody)))]
async fn replace_partners(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Plain<PartnerList> {
    upsert(&s, &headers, body, true).await
}

/// Adds partners (or updates those with the same `msp_id`); same body as PUT.
#[utoipa::path(post, path = "/collaboration/partners", request_body(content = Vec<Partner>, description = "JSON partners or CSV"),
    responses((status = 200, body = PartnerList), (status = 422, body = ErrorBody)))]
async fn add_partners(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Plain<PartnerList> {
    upsert(&s, &headers, body, false).await
}

/// The agent, or a 503 saying why it is not loaded.
fn loaded<A: Agent>(l: &Loaded<A>) -> Result<&Arc<A>, ApiError> {
    Ok(mesh_core::agents::loaded(l)?)
}

async fn upsert(
    s: &Arc<AppState>,
    headers: &HeaderMap,
    body: Result<String, StringRejection>,
    replace: bool,
) -> Plain<PartnerList> {
    let agent = loaded(&s.agents.partners)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = rejection.body_text();
        if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("body", message)
        } else {
            ApiError::BadJson {
                status,
                field: Some("body".into()),
                message,
            }
        }
    })?;
    let body = body.as_str();
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let partners = parse_partners(body, csv)?;
    if partners.is_empty() {
        return Err(ApiError::validation(
            "partners",
            "the body holds no partners",
        ));
    }
    agent.upsert(partners, replace).await?;
    let state = Arc::clone(&s.mesh);
    let change = if replace {
        "partner directory replaced"
    } else {
        "partners added"
    };
    tokio::task::spawn_blocking(move || state.record_agent_states(change));
    let (partners, sample_data) = agent.list().await?;
    Ok(Json(PartnerList {
        count: partners.len(),
        partners,
        sample_data,
    }))
}

/// Every agent route, its short alias, and the partner directory routes. The routes that
/// take the caller's data (series, points, training records) accept bodies up to
/// `data_body_limit` bytes; the others keep the server's general limit. Past it: 413 naming `body`.
pub fn routes(data_body_limit: usize) -> Router<Arc<AppState>> {
    let data_limit = || DefaultBodyLimit::max(data_body_limit);
    Router::new()
        .route(AgentKind::ThreatIntelligence.route(), post(threat))
        .route(AgentKind::ThreatIntelligence.alias(), post(threat))
        .route(AgentKind::MarketIntelligence.route(), post(market))
        .route(AgentKind::MarketIntelligence.alias(), post(market))
        .route(AgentKind::NlpQuery.route(), post(ask))
        .route(AgentKind::NlpQuery.alias(), post(ask))
        .route(AgentKind::PartnerMatching.route(), post(match_partners))
        .route(AgentKind::PartnerMatching.alias(), post(match_partners))
        .route(AgentKind::Compliance.route(), post(compliance))
        .route(AgentKind::Compliance.alias(), post(compliance))
        .route(
            AgentKind::AnomalyDetection.route(),
            post(anomaly).layer(data_limit()),
        )
        .route(
            AgentKind::AnomalyDetection.alias(),
            post(anomaly).layer(data_limit()),
        )
        .route(
            AgentKind::RevenueForecasting.route(),
            post(revenue).layer(data_limit()),
        )
        .route(
            AgentKind::RevenueForecasting.alias(),
            post(revenue).layer(data_limit()),
        )
        .route(AgentKind::ResourceAllocation.route(), post(resource))
        .route(AgentKind::ResourceAllocation.alias(), post(resource))
        .route(AgentKind::ClientHealth.route(), post(client_health))
        .route(AgentKind::ClientHealth.alias(), post(client_health))
        .route(
            "/client-health/train",
            post(client_health_train).layer(data_limit()),
        )
        .route("/client-health/models", get(client_health_models))
        .route(AgentKind::FederatedLearning.route(), post(federated))
        .route(AgentKind::FederatedLearning.alias(), post(federated))
        .route("/federated/status", get(federated_status))
        .route(
            "/collaboration/partners",
            get(list_partners).put(replace_partners).post(add_partners),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        threat,
        market,
        ask,
        match_partners,
        compliance,
        anomaly,
        revenue,
        resource,
        client_health,
        client_health_train,
        client_health_models,
        federated,
        federated_status,
        list_partners,
        replace_partners,
        add_partners
    ),
    components(schemas(
        ThreatRequest,
        ThreatResponse,
        MarketRequest,
        MarketResponse,
        AskRequest,
        AskResponse,
        MatchRequest,
        MatchResponse,
        ComplianceRequest,
        ComplianceResponse,
        AnomalyRequest,
        AnomalyResponse,
        ForecastRequest,
        ForecastResponse,
        OptimizeRequest,
        OptimizeResponse,
        PredictRequest,
        PredictResponse,
        TrainRequest,
        TrainResponse,
        ModelList,
        FederatedRequest,
        FederatedResponse,
        FederatedStatus,
        PartnerList,
        Partner
    ))
)]
pub struct AgentsDoc;
