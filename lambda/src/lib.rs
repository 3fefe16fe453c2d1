//! The mesh's entry points, each over one [`mesh_core::Mesh`]:
//!
//! - [`http`]: the axum router (routes, protection layers, the one error-to-status mapping),
//!   served by `msp-mesh serve` and, on Lambda, by [`aws::lambda_http`];
//! - `aws` (with the `aws` feature): the Lambda entry points (HTTP, API Gateway WebSocket, SQS
//!   worker, batch fan-out);
//! - [`batch`]: `msp-mesh score` (JSON lines, CSV, Parquet; local or S3; resumable);
//! - [`cli`]: the `msp-mesh` subcommands, and the explicit preparation step (fetch, train, cache);
//! - [`progress`]: progress bars.
//!
//! The binaries (`msp-mesh`, `bootstrap`) compose them: `batch`, `aws` and `cli` reach the
//! agents only through the core, never through `http`.

#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
pub mod cli;
pub mod http;
pub mod progress;
