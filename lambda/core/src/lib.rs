//! The service core of the MSP Intelligence Mesh: one [`Mesh`] under every entry point.
//!
//! - [`mesh`]: the [`Mesh`] (encoder, agents, store, events, sinks) and how it is opened and loaded;
//! - [`agents`]: the table of agents ([`with_agent!`]) and dispatch into an [`AgentAnswer`];
//! - [`record`]: recording an answer (store, then event and alerts, then sinks);
//! - [`alerts`]: the alert rules, on the answers' typed facts;
//! - [`error`]: [`MeshError`], the one error of the core, and the JSON [`ErrorBody`];
//! - [`store`]: the state tables (SQLite or DynamoDB) and the event log;
//! - [`events`], [`filters`], [`subscriptions`], [`connections`], [`sinks`], [`notify`]: the
//!   event stream, a connection's filters, the live-subscription protocol, API Gateway WebSocket
//!   connections, Kinesis, EventBridge;
//! - [`jobs`] and [`job_runner`]: async jobs on SQS; [`metrics`], [`history`] and [`status`]:
//!   measured counters, their per-minute history and agent status;
//! - [`config`]: every setting (clap, with environment fallbacks); [`bundle`]: the S3 model bundle.
//!
//! It knows nothing of HTTP: the serving crate maps [`MeshError`] to status codes in one place.

pub mod agents;
pub mod alerts;
pub mod bundle;
pub mod config;
pub mod connections;
pub mod error;
pub mod events;
pub mod filters;
pub mod history;
pub mod job_runner;
pub mod jobs;
pub mod keys;
pub mod mesh;
pub mod metrics;
pub mod notify;
pub mod record;
#[cfg(feature = "aws")]
pub mod sinks;
pub mod status;
pub mod store;
pub mod subscriptions;

pub use agents::AgentAnswer;

/// The SDK client of a build without the `aws` feature: it has no value, so a client of an AWS
/// service (the job queue, the threat notifier, the WebSocket management API) cannot exist,
/// and the code that would use one compiles unchanged.
#[cfg(not(feature = "aws"))]
#[derive(Debug, Clone, Copy)]
pub enum NoSdk {}

/// The error of a setting that needs AWS, in a build without the `aws` feature.
#[cfg(not(feature = "aws"))]
pub fn needs_aws_build(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} needs a build with AWS support: add `--features aws` to the cargo command \
         (the Lambda `bootstrap` always has it)"
    )
}
pub use config::{ModelArgs, ServiceArgs};
pub use error::{ErrorBody, MeshError};
pub use mesh::{Mesh, Services};
