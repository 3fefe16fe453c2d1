//! Serving layer: one axum [`Router`](axum::Router) for the local server
//! (`msp-mesh serve`) and for AWS Lambda (`bootstrap`), plus the shared
//! configuration and start-up code.

pub mod agents_api;
pub mod api;
pub mod apigw_ws;
pub mod batch;
pub mod bundle;
pub mod columnar;
pub mod compare;
pub mod config;
pub mod error;
pub mod events;
pub mod fanout;
pub mod jobs;
pub mod lambda;
pub mod metrics;
pub mod notify;
pub mod prepare;
pub mod progress;
pub mod protection;
pub mod records_api;
pub mod score;
pub mod sinks;
pub mod standin;
pub mod state;
pub mod store;
pub mod web;
pub mod ws;

pub use api::router;
pub use config::{ModelArgs, ServiceArgs};
pub use error::ApiError;
pub use state::AppState;
