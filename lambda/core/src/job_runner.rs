//! Running one queued job ([`run_job`]): the answer is stored under the job id. A job the agent
//! rejects (the request's fault) is stored as failed and not retried; anything else (the agent
//! not loaded, the store down, a message that is not a job) is an `Err`: the message stays on
//! the queue, is retried, and after the queue's `maxReceiveCount` moves to the dead-letter
//! queue, so nothing is lost.

use serde_json::json;

use crate::jobs::JobMessage;
use crate::mesh::Mesh;
use crate::store::{iso8601_ms, now_ms, off_thread, AgentResult};

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
pub async fn run_job(state: &Mesh, body: &str) -> Result<JobOutcome, String> {
    let job: JobMessage =
        serde_json::from_str(body).map_err(|e| format!("the message is not a job: {e}"))?;
    let kind = crate::agents::parse_agent(&job.agent)
        .ok_or_else(|| format!("the job names an unknown agent `{}`", job.agent))?;
    let id = job.job_id.clone();
    let existing = off_thread(&state.store, move |s| s.get_result(&id))
        .await
        .map_err(|e| e.to_string())?;
    if existing.is_some() {
        return Ok(JobOutcome::AlreadyDone);
    }
    match state.dispatch(kind, job.request).await {
        Ok(answer) => {
            state
                .record_as(answer, job.job_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobOutcome::Done)
        }
        Err(e) if e.is_request_fault() => {
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
