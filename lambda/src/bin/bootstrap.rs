//! AWS Lambda entry point: the same router as `msp-mesh serve`, under `lambda_http`.
//!
//! Configuration comes from the function's environment (`MESH_MODEL_SOURCE=s3://bucket/prefix`
//! loads weights from S3 into `/tmp/msp-mesh-models` at cold start; warm invocations reuse them).

use clap::Parser;
use mesh_lambda::{AppState, ModelArgs, ServiceArgs};

#[derive(Debug, Parser)]
#[command(
    name = "bootstrap",
    version,
    about = "MSP Intelligence Mesh on AWS Lambda"
)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time() // CloudWatch stamps each line
        .init();
    let args = Args::parse();
    let state = AppState::load(&args.model, &args.service, None)
        .await
        .map_err(|e| -> lambda_http::Error { e.into() })?;
    mesh_lambda::lambda::run(state).await
}
