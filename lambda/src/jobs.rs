//! Long agent calls as async jobs on the SQS queue `msp-async-processing`
//! (`--async-queue-url` / `MESH_ASYNC_QUEUE_URL`). `POST /jobs` checks the request against the
//! agent's request type and queues it (202 with a `job_id`); a worker runs it and stores the
//! answer under the job id, so `GET /jobs/{job_id}` (and `/results/{job_id}`) find it.
//! Workers: `msp-mesh worker` (long polling), or `bootstrap` with `MESH_MODE=worker` behind the
//! queue's Lambda event source mapping (partial batch failures). A job the agent rejects
//! (a 4xx) is stored as failed and not retried; anything else (the agent not loaded, the store
//! down, a message that is not a job) stays on the queue, is retried, and after the queue's
//! `maxReceiveCount` moves to the dead-letter queue, so nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_agents::AgentKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ErrorBody;
use crate::store::{iso8601_ms, new_result_id, now_ms, off_thread, AgentResult};
use crate::{ApiError, AppState};

/// The plan's queue name.
pub const ASYNC_QUEUE: &str = "msp-async-processing";
/// SQS's largest message body.
pub const MAX_JOB_BYTES: usize = 256 * 1024;

/// `POST /jobs`: which agent, and the body its route takes.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRequest {
    /// Agent name (kebab-case, as `msp-mesh score --agent`), e.g. `revenue-forecasting`.
    pub agent: String,
    /// The request body of the agent's route.
    pub request: Value,
}

/// A queued job: what travels on SQS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: String,
    pub agent: String,
    pub request: Value,
    pub submitted_ms: i64,
}

/// The answer to `POST /jobs` and `GET /jobs/{job_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub job_id: String,
    /// `queued` (answer of `POST /jobs`), `pending` (no result stored yet: queued or running,
    /// or an id this mesh never issued), `done` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The stored answer when `done`: the agent's response with its `result_id` (= `job_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The agent's error when `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Sends jobs to one SQS queue.
pub struct JobQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

fn sqs_error<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}

impl JobQueue {
    /// A queue client (`AWS_ENDPOINT_URL_SQS` for a local server).
    pub fn new(config: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            queue_url,
        }
    }

    /// Queues one job.
    pub async fn submit(&self, job: &JobMessage) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(job).map_err(|e| e.to_string())?)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(())
    }
}

/// Queues a job for an agent, after checking its request as the agent's route would.
#[utoipa::path(post, path = "/jobs", request_body = JobRequest,
    responses((status = 202, body = JobStatus), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn submit_job(
    State(state): State<Arc<AppState>>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    let Json(job) = body?;
    let kind = crate::score::parse_agent(&job.agent).ok_or_else(|| {
        let names = AgentKind::ALL.map(|k| k.cli_name()).join(", ");
        ApiError::validation(
            "agent",
            format!("unknown agent `{}`; expected one of {names}", job.agent),
        )
    })?;
    crate::with_agent!(state, kind, agent => crate::score::parse_request(agent, job.request.clone()).map(drop))
        .map_err(|e| match e {
            ApiError::Validation { field, message } => ApiError::Validation {
                field: format!("request.{field}").replace("request.body", "request"),
                message,
            },
            other => other,
        })?;
    let Some(queue) = &state.job_queue else {
        return Err(ApiError::ModelUnavailable(
            "async jobs need a queue: set --async-queue-url / MESH_ASYNC_QUEUE_URL".into(),
        ));
    };
    let message = JobMessage {
        job_id: new_result_id(),
        agent: kind.cli_name().to_string(),
        request: job.request,
        submitted_ms: now_ms(),
    };
    let size = serde_json::to_vec(&message).map_or(0, |b| b.len());
    if size > MAX_JOB_BYTES {
        return Err(ApiError::TooLarge {
            field: "request".into(),
            message: format!(
                "a job carries at most {MAX_JOB_BYTES} bytes on SQS; this one is {size}"
            ),
        });
    }
    queue.submit(&message).await.map_err(|e| {
        ApiError::ModelUnavailable(format!("the job queue did not take the job: {e}"))
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(JobStatus {
            job_id: message.job_id,
            status: "queued".into(),
            agent: Some(message.agent),
            result: None,
            error: None,
        }),
    ))
}

/// A job's status, with its answer once a worker has stored it.
#[utoipa::path(get, path = "/jobs/{job_id}", params(("job_id" = String, Path, description = "job_id of POST /jobs")),
    responses((status = 200, body = JobStatus)))]
async fn job_status(
    State(state): State<Arc<AppState>>,
    Path(job_id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    let lookup = job_id.clone();
    let stored = off_thread(&state.store, move |s| s.get_result(&lookup)).await?;
    let status = match stored {
        None => JobStatus {
            job_id,
            status: "pending".into(),
            agent: None,
            result: None,
            error: None,
        },
        Some(result) => {
            let failed = result.data.get("job_status").and_then(Value::as_str) == Some("failed");
            JobStatus {
                job_id,
                status: if failed { "failed" } else { "done" }.into(),
                agent: Some(result.agent),
                error: failed.then(|| result.data["error"].clone()),
                result: (!failed).then_some(result.data),
            }
        }
    };
    Ok(Json(status))
}

/// `POST /jobs` and `GET /jobs/{job_id}`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/jobs", post(submit_job))
        .route("/jobs/{job_id}", get(job_status))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(submit_job, job_status),
    components(schemas(JobRequest, JobStatus))
)]
pub struct JobsDoc;

/// What running one queued job came to (either way the message is done with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The answer is stored under the job id.
    Done,
    /// The agent rejected the request; the error is stored under the job id.
    Failed,
    /// A result under this job id exists already (SQS delivered the message again).
    AlreadyDone,
}

/// Runs one queued job. `Err` means the message should stay on the queue (retried, then
/// dead-lettered): it is not a job, or the failure is not the request's fault.
pub async fn run_job(state: &AppState, body: &str) -> Result<JobOutcome, String> {
    let job: JobMessage =
        serde_json::from_str(body).map_err(|e| format!("the message is not a job: {e}"))?;
    let kind = crate::score::parse_agent(&job.agent)
        .ok_or_else(|| format!("the job names an unknown agent `{}`", job.agent))?;
    let id = job.job_id.clone();
    let existing = off_thread(&state.store, move |s| s.get_result(&id))
        .await
        .map_err(|e| e.to_string())?;
    if existing.is_some() {
        return Ok(JobOutcome::AlreadyDone);
    }
    match crate::score::answer(state, kind, job.request).await {
        Ok((data, model)) => {
            crate::records_api::record_result_as(state, kind, model, data, job.job_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobOutcome::Done)
        }
        Err(e) if e.is_client_error() => {
            let at = now_ms();
            let failed = AgentResult {
                result_id: job.job_id.clone(),
                agent: kind.cli_name().to_string(),
                timestamp_ms: at,
                timestamp: iso8601_ms(at),
                model_used: state
                    .agent_models()
                    .into_iter()
                    .find(|(k, _)| *k == kind)
                    .and_then(|(_, m)| m.ok())
                    .unwrap_or_default(),
                data: json!({"job_id": job.job_id, "job_status": "failed", "error": e.body()}),
            };
            off_thread(&state.store, move |s| s.put_result(&failed))
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobOutcome::Failed)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Jobs a worker has handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkSummary {
    pub done: u64,
    pub failed: u64,
    /// Messages left on the queue for a retry (or the dead-letter queue).
    pub retried: u64,
}

/// `msp-mesh worker`: long-polls `queue_url`, runs each job, deletes what is done with;
/// stops after `idle_exit` without a message (never when `None`).
pub async fn work(
    state: Arc<AppState>,
    config: &aws_config::SdkConfig,
    queue_url: &str,
    idle_exit: Option<Duration>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<WorkSummary> {
    let client = aws_sdk_sqs::Client::new(config);
    let mut summary = WorkSummary::default();
    let mut idle_since = std::time::Instant::now();
    loop {
        let wait = idle_exit.map_or(20, |d| d.as_secs().clamp(1, 20)) as i32;
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("receiving from {queue_url}: {}", sqs_error(e)))?;
        let messages = received.messages();
        if messages.is_empty() {
            if idle_exit.is_some_and(|limit| idle_since.elapsed() >= limit) {
                return Ok(summary);
            }
            continue;
        }
        idle_since = std::time::Instant::now();
        for message in messages {
            let body = message.body().unwrap_or("");
            match run_job(&state, body).await {
                Ok(outcome) => {
                    match outcome {
                        JobOutcome::Failed => summary.failed += 1,
                        JobOutcome::Done | JobOutcome::AlreadyDone => summary.done += 1,
                    }
                    if let Some(handle) = message.receipt_handle() {
                        client
                            .delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| {
                                anyhow::anyhow!("deleting a done job: {}", sqs_error(e))
                            })?;
                    }
                }
                Err(e) => {
                    tracing::warn!(message_id = message.message_id().unwrap_or(""), error = %e, "job left on the queue for a retry");
                    summary.retried += 1;
                }
            }
            progress.inc(1);
            progress.set_message(format!(
                "{} done, {} failed, {} retried",
                summary.done, summary.failed, summary.retried
            ));
        }
    }
}

/// `bootstrap` with `MESH_MODE=worker`: runs a batch from the event source mapping and
/// returns the ids of the messages to retry (`ReportBatchItemFailures`).
pub async fn handle_sqs_event(state: &AppState, event: aws_lambda_events::sqs::SqsEvent) -> Value {
    let mut failures = vec![];
    for record in event.records {
        let body = record.body.as_deref().unwrap_or("");
        if let Err(e) = run_job(state, body).await {
            let id = record.message_id.unwrap_or_default();
            tracing::warn!(message_id = %id, error = %e, "job failed; SQS will retry it");
            failures.push(json!({"itemIdentifier": id}));
        }
    }
    json!({"batchItemFailures": failures})
}
