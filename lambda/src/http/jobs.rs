//! `POST /jobs` checks the request against the agent's request type and queues it on SQS
//! (202 with a `job_id`, [`mesh_core::jobs`]); a worker runs it and stores the answer under
//! the job id, so `GET /jobs/{job_id}` (and `/results/{job_id}`) find it.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use mesh_core::error::{ErrorBody, MeshError};
use mesh_core::jobs::{JobMessage, JobRequest, JobStatus, MAX_JOB_BYTES};
use mesh_core::store::{new_result_id, now_ms, off_thread};

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Queues a job for an agent, after checking its request as the agent's route would.
#[utoipa::path(post, path = "/jobs", request_body = JobRequest,
    responses((status = 202, body = JobStatus), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn submit_job(
    State(state): State<Arc<AppState>>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobStatus>), ApiError> {
    let Json(job) = body?;
    let kind = mesh_core::agents::parse_agent(&job.agent).ok_or_else(|| {
        ApiError::validation(
            "agent",
            format!(
                "unknown agent `{}`; expected one of {}",
                job.agent,
                mesh_core::agents::agent_names()
            ),
        )
    })?;
    mesh_core::with_agent!(state.mesh, kind, agent => mesh_core::agents::parse_request(agent, job.request.clone()).map(drop))
        .map_err(|e| match e {
            MeshError::Invalid { field, message } => ApiError::validation(
                format!("request.{field}").replace("request.body", "request"),
                message,
            ),
            other => other.into(),
        })?;
    let Some(queue) = &state.job_queue else {
        return Err(ApiError::unavailable(
            "async jobs need a queue: set --async-queue-url / MESH_ASYNC_QUEUE_URL",
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
        return Err(ApiError::too_large(
            "request",
            format!("a job carries at most {MAX_JOB_BYTES} bytes on SQS; this one is {size}"),
        ));
    }
    queue
        .submit(&message)
        .await
        .map_err(|e| ApiError::unavailable(format!("the job queue did not take the job: {e}")))?;
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
