//! AWS Lambda entry point. One binary, three kinds of function (`--mode` / `MESH_MODE`):
//! `http` (default): the same router as `msp-mesh serve`, under `lambda_http` (API Gateway
//! REST and HTTP APIs, ALB); `websocket`: the WebSocket API's `$connect` / `$disconnect` /
//! `$default` routes; `worker`: batches of async jobs from the SQS queue's event source mapping; `score`: one shard of
//! a fanned-out `msp-mesh score --fan-out-function` per invocation; `broadcast`: batches of the
//! event log table's DynamoDB stream, pushed to the WebSocket API's connections and Kinesis
//! (no model loaded); `authorizer`: the WebSocket API's `$connect` authorizer, checking the
//! `api_key` query parameter against the API keys (no model loaded).
//!
//! Configuration comes from the function's environment (`MESH_MODEL_SOURCE=s3://bucket/prefix`
//! loads weights from S3 into `/tmp/msp-mesh-models` at cold start; warm invocations reuse them).

use std::sync::Arc;

use clap::Parser;
use lambda_http::{service_fn, LambdaEvent};
use mesh_core::{Mesh, ModelArgs, ServiceArgs};
use mesh_lambda::{aws, cli, http};

/// What kind of events the function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Http,
    Websocket,
    Worker,
    /// One shard of a fanned-out `msp-mesh score` per invocation.
    Score,
    /// Batches of the event log's DynamoDB stream, delivered to the event sinks.
    Broadcast,
    /// The WebSocket API's `$connect` authorizer (API keys, no model).
    Authorizer,
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

/// Why websocket mode refuses to start without the management endpoint.
const NEEDS_ENDPOINT: &str = "websocket mode needs MESH_WEBSOCKET_ENDPOINT (the management API)";

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
        return Err(NEEDS_ENDPOINT.into());
    }
    if !matches!(args.mode, Mode::Broadcast | Mode::Authorizer) {
        cli::prepare::before_loading(&args.model)
            .await
            .map_err(|e| -> lambda_http::Error { e.into() })?;
    }
    match args.mode {
        Mode::Authorizer => {
            let keys = Arc::new(mesh_core::keys::ApiKeys::load(&args.service.protection)?);
            if keys.is_empty() {
                tracing::warn!("no API key configured: every connection will be refused");
            }
            let handler = |event: LambdaEvent<serde_json::Value>| {
                let keys = Arc::clone(&keys);
                async move {
                    Ok::<_, lambda_http::Error>(aws::authorizer::authorize(&keys, &event.payload))
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
        Mode::Broadcast => {
            // No model: the stream's events go to the sinks of the services alone.
            let services = Arc::new(mesh_core::mesh::Services::open(&args.service).await?);
            let metrics = Arc::new(mesh_core::metrics::Metrics::default());
            let handler = |event: LambdaEvent<serde_json::Value>| {
                let (services, metrics) = (Arc::clone(&services), Arc::clone(&metrics));
                async move {
                    Ok::<_, lambda_http::Error>(
                        aws::broadcast::handle_stream_batch(&services, &metrics, event.payload)
                            .await,
                    )
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
        Mode::Http => {
            let state = http::AppState::load(&args.model, &args.service, None)
                .await
                .map_err(|e| -> lambda_http::Error { e.into() })?;
            aws::lambda_http::run(http::router(state)).await
        }
        Mode::Websocket => {
            let mesh = load_mesh(&args).await?;
            let api = mesh.connections_api.clone().ok_or(NEEDS_ENDPOINT)?;
            let handler = |event: LambdaEvent<_>| {
                let (mesh, api) = (Arc::clone(&mesh), Arc::clone(&api));
                async move {
                    Ok::<_, lambda_http::Error>(
                        aws::websocket::handle_event(&mesh, &api, event.payload).await,
                    )
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
        Mode::Worker => {
            let mesh = load_mesh(&args).await?;
            let handler = |event: LambdaEvent<_>| {
                let mesh = Arc::clone(&mesh);
                async move {
                    Ok::<_, lambda_http::Error>(
                        aws::worker::handle_sqs_event(&mesh, event.payload).await,
                    )
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
        Mode::Score => {
            let mesh = load_mesh(&args).await?;
            let spool = args.model.cache_dir().join("score");
            let handler = |event: LambdaEvent<aws::fanout::ShardTask>| {
                let (mesh, spool) = (Arc::clone(&mesh), spool.clone());
                async move {
                    aws::fanout::run_shard(mesh, event.payload, &spool)
                        .await
                        .map_err(|e| -> lambda_http::Error { format!("{e:#}").into() })
                }
            };
            lambda_http::lambda_runtime::run(service_fn(handler)).await
        }
    }
}

/// The mesh of a function that serves no HTTP (websocket, worker and score modes).
async fn load_mesh(args: &Args) -> Result<Arc<Mesh>, lambda_http::Error> {
    Ok(mesh_lambda::progress::load_mesh(&args.model, &args.service).await?)
}
