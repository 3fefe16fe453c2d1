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
//! - [`jobs`] and [`job_runner`]: async jobs on SQS; [`metrics`] and [`status`]: measured
//!   counters and agent status;
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
pub mod job_runner;
pub mod jobs;
pub mod keys;
pub mod mesh;
pub mod metrics;
pub mod notify;
pub mod record;
pub mod sinks;
pub mod status;
pub mod store;
pub mod subscriptions;

pub use agents::AgentAnswer;
pub use config::{ModelArgs, ServiceArgs};
pub use error::{ErrorBody, MeshError};
pub use mesh::{Mesh, Services};
