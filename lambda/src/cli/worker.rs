//! `msp-mesh worker`: runs queued agent jobs from SQS ([`crate::aws::worker`]).

use anyhow::Context;
use mesh_core::{ModelArgs, ServiceArgs};

#[cfg(feature = "aws")]
use crate::progress::load_mesh;

/// Long-polls the queue of `--async-queue-url` and runs each job until `idle_exit` passes
/// without one (never when unset).
pub async fn worker(
    model: ModelArgs,
    service: ServiceArgs,
    idle_exit: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let queue_url = service
        .async_queue_url
        .clone()
        .context("the worker needs a queue: set --async-queue-url / MESH_ASYNC_QUEUE_URL")?;
    #[cfg(not(feature = "aws"))]
    {
        let _ = (model, idle_exit);
        Err(mesh_core::needs_aws_build(&format!(
            "the SQS worker of {queue_url}"
        )))
    }
    #[cfg(feature = "aws")]
    run(model, service, idle_exit, queue_url).await
}

/// [`worker`] once its queue is known.
#[cfg(feature = "aws")]
async fn run(
    model: ModelArgs,
    service: ServiceArgs,
    idle_exit: Option<std::time::Duration>,
    queue_url: String,
) -> anyhow::Result<()> {
    super::prepare::before_loading(&model).await?;
    let mesh = load_mesh(&model, &service).await?;
    let config = mesh_inference::aws::sdk_config(mesh_inference::aws::SdkRetries::Standard).await;
    let bar = indicatif::ProgressBar::new_spinner()
        .with_message(format!("waiting for jobs on {queue_url}"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let summary = crate::aws::worker::work(mesh, &config, &queue_url, idle_exit, &bar).await?;
    bar.finish_and_clear();
    eprintln!(
        "worker: {} done, {} failed (stored as failed), {} left for a retry",
        summary.done, summary.failed, summary.retried
    );
    Ok(())
}
