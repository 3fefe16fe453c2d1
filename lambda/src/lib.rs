//! Serving layer: one axum [`Router`](axum::Router) for the local server
//! (`msp-mesh serve`) and for AWS Lambda (`bootstrap`), plus the shared
//! configuration and start-up code.

pub mod agents_api;
pub mod api;
pub mod config;
pub mod error;
pub mod lambda;
pub mod prepare;
pub mod progress;
pub mod score;
pub mod state;

pub use api::router;
pub use config::ModelArgs;
pub use error::ApiError;
pub use state::AppState;
