//! `msp-mesh score`: one agent over a file of records, locally ([`crate::batch`]) or fanned
//! out over Lambda shards ([`crate::aws::fanout`]).

use anyhow::Context;
use mesh_core::{ModelArgs, ServiceArgs};

use crate::progress::load_mesh;

/// Fans the input out over the Lambda function of `options`.
#[cfg(feature = "aws")]
pub async fn fan_out(options: crate::aws::fanout::FanOutOptions) -> anyhow::Result<()> {
    let config = mesh_inference::aws::sdk_config(mesh_inference::aws::SdkRetries::Standard).await;
    let bar = indicatif::ProgressBar::new(0);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let summary = crate::aws::fanout::fan_out(&config, &options, &bar).await;
    bar.finish_and_clear();
    eprintln!("{}", summary?);
    Ok(())
}

/// Scores the input with agent `agent` in this process: prepares and loads only that agent
/// (and the encoder) over the state of `service` (for the models users trained; nothing is
/// recorded), then streams the records through it.
pub async fn score(
    mut model: ModelArgs,
    service: &ServiceArgs,
    agent: &str,
    options: impl FnOnce(mesh_agents::AgentKind) -> crate::batch::ScoreOptions,
) -> anyhow::Result<()> {
    let kind = mesh_core::agents::parse_agent(agent).with_context(|| {
        format!(
            "unknown agent `{agent}`; one of: {}",
            mesh_core::agents::agent_names()
        )
    })?;
    let options = options(kind);
    model.only_agents = mesh_agents::AgentSelection::only(kind);
    super::prepare::before_loading(&model).await?;
    let mesh = load_mesh(&model, service).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let summary = crate::batch::run(mesh, &options, &bar).await?;
    bar.finish_and_clear();
    eprintln!("{summary}");
    Ok(())
}
