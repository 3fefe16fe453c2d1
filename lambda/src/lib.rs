//! Serving layer: one axum [`Router`](axum::Router) for the local server
//! (`msp-mesh serve`) and for AWS Lambda (`bootstrap`), plus the shared
//! configuration and start-up code.

pub mod api;
pub mod config;
pub mod error;
pub mod lambda;
pub mod state;

pub use api::router;
pub use config::ModelArgs;
pub use error::ApiError;
pub use state::AppState;
