//! AWS Lambda entry point. One binary, three kinds of function (`--mode` / `MESH_MODE`):
//! `http` (default): the same router as `msp-mesh serve`, under `lambda_http` (API Gateway
//! REST and HTTP APIs, ALB); `websocket`: the WebSocket API's `$connect` / `$disconnect` /
//! `$default` routes; `worker`: batches of async jobs from the SQS queue's event source mapping; `score`: one shard of
//! a fanned-out `msp-mesh score --fan-out-function` per invocation.
//!
//! Configuration comes from the function's environment (`MESH_MODEL_SOURCE=s3://bucket/prefix`
//! loads weights from S3 into `/tmp/msp-mesh-models` at cold start; warm invocations reuse them).

use std::sync::Arc;

use clap::Parser;
use lambda_http::{service_fn, LambdaEvent};
use mesh_lambda::{AppState, ModelArgs, ServiceArgs};

/// What kind of events the function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Http,
    Websocket,
    Worker,
    /// One shard of a fanned-out `msp-mesh score` per invocation.
    Score,
}

#[derive(Debug, Parser)]
#[command(
    name = "bootstrap",
    version,
    about = "MSP Intelligence Mesh on AWS Lambda"
)]
struct Args {
    #[arg(long, env = "MESH_MODE", value_enum, default_value_t = Mode::Http)]
    mode: Mode,
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
    if args.mode == Mode::Websocket && args.service.websocket_endpoint.is_none() {
        return Err("websocket mode needs MESH_WEBSOCKET_ENDPOINT (the management API)".into());
    }
    let state = AppState::load(&args.model, &args.service, None)
        .await
        .map_err(|e| -> lambda_http::Error { e.into() })?;
    match args.mode {
        Mode::Http => mesh_lambda::lambda::run(state).await,
        Mode::Websocket => {
            let handler = |event: LambdaEvent<_>| {
                let state = Arc::clone(&state);
                async move {
                    let api = state.connections_api.clone().expect("checked above");
                    Ok::<_, lambda_http::Error>(
                        mesh_lambda::apigw_ws::handle_event(&state, &api, event.payload).await,
                    )
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
        Mode::Worker => {
            let handler = |event: LambdaEvent<_>| {
                let state = Arc::clone(&state);
                async move {
                    Ok::<_, lambda_http::Error>(
                        mesh_lambda::jobs::handle_sqs_event(&state, event.payload).await,
                    )
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
        Mode::Score => {
            let spool = args.model.cache_dir().join("score");
            let handler = |event: LambdaEvent<mesh_lambda::fanout::ShardTask>| {
                let (state, spool) = (Arc::clone(&state), spool.clone());
                async move {
                    mesh_lambda::fanout::run_shard(state, event.payload, &spool)
                        .await
                        .map_err(|e| -> lambda_http::Error { format!("{e:#}").into() })
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
    }
}
