//! The SQS worker of async jobs (`POST /jobs`): `msp-mesh worker` long-polls the queue
//! ([`work`]); `bootstrap` with `MESH_MODE=worker` takes batches from the queue's event source
//! mapping ([`handle_sqs_event`], partial batch failures). Each job runs through
//! [`mesh_core::jobs::run_job`].

use std::sync::Arc;
use std::time::Duration;

use mesh_core::job_runner::{run_job, JobOutcome};
use mesh_core::jobs::sqs_error;
use mesh_core::Mesh;
use serde_json::{json, Value};

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
    state: Arc<Mesh>,
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
pub async fn handle_sqs_event(state: &Mesh, event: aws_lambda_events::sqs::SqsEvent) -> Value {
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
