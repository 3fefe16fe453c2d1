//! The `msp-mesh` command line: one module per subcommand, and [`prepare`], the explicit
//! preparation step (fetch models and data sets, train heads, cache embeddings) that `serve`,
//! `score` and `worker` run before they load the mesh. `serve` itself is composed by the
//! binary (the HTTP server over the loaded mesh); everything else runs through [`run`].

pub mod bench;
pub mod bundle;
pub mod client_health;
pub mod data;
pub mod embed;
pub mod models;
pub mod partners;
pub mod prepare;
pub mod runtime;
pub mod score;
pub mod worker;

use std::net::SocketAddr;

#[cfg(feature = "aws")]
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mesh_core::{ModelArgs, ServiceArgs};

pub use self::runtime::{init_logging, runtime};

/// On-device ML inference for managed service providers.
#[derive(Debug, Parser)]
#[command(name = "msp-mesh", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Serve the HTTP API (under AWS Lambda when AWS_LAMBDA_RUNTIME_API is set).
    Serve(ServeArgs),
    /// Print the embeddings of TEXT... as a JSON array of vectors.
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Texts to embed.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Manage the models of the manifest.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Manage the labelled data sets and knowledge corpora of the manifest.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Fetch models and data sets and train heads: everything `serve` needs (only what is missing).
    Prepare {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Score a file of records with one agent: one request per record, one answer per record in
    /// input order (JSON lines or CSV; local, standard streams or `s3://`); resumable.
    Score {
        #[command(flatten)]
        model: ModelArgs,
        /// Agent name (kebab-case): threat-intelligence, market-intelligence, nlp-query,
        /// partner-matching, compliance, anomaly-detection, revenue-forecasting,
        /// resource-allocation, client-health, federated-learning.
        #[arg(long)]
        agent: String,
        /// Input of request bodies: a file, `-` (standard input) or `s3://bucket/key`.
        #[arg(long, default_value = "-")]
        input: String,
        /// Output: a file, `-` (standard output) or `s3://bucket/key`.
        #[arg(long, default_value = "-")]
        output: String,
        /// Input format (default: by extension, `.csv` or JSON lines).
        #[arg(long, value_enum)]
        input_format: Option<crate::batch::Format>,
        /// Output format (default: by extension, `.csv` or JSON lines).
        #[arg(long, value_enum)]
        output_format: Option<crate::batch::Format>,
        /// Continue the output a killed run left (its complete records are kept, the rest scored).
        #[arg(long)]
        resume: bool,
        /// Records in flight at once.
        #[arg(long, default_value_t = crate::batch::DEFAULT_WINDOW)]
        window: usize,
        /// Fan the input out over this Lambda function (`bootstrap` with `MESH_MODE=score`) in
        /// byte-range shards: `--input s3://bucket/key.jsonl`, `--output s3://bucket/prefix`
        /// (parts `part-NNNNN.jsonl` and `manifest.json`); rerunning finishes what is missing.
        #[arg(long, env = "MESH_SCORE_FUNCTION")]
        fan_out_function: Option<String>,
        /// Bytes of input per shard (fan-out).
        #[arg(long, default_value_t = crate::batch::DEFAULT_SHARD_BYTES)]
        shard_bytes: u64,
        /// Shards in flight at once (fan-out).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Where the models users trained live (`--state-db`, `--state-backend`): a batch
        /// scores with them and records nothing there.
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Manage the partner directory of `/collaboration/match` (without a running server).
    Partners {
        #[command(subcommand)]
        command: partners::PartnersCommand,
    },
    /// Train and list churn models of `/client-health/predict` (without a running server).
    ClientHealth {
        #[command(subcommand)]
        command: client_health::ClientHealthCommand,
    },
    /// Run queued agent jobs from SQS (`POST /jobs`): long-polls the queue of
    /// `--async-queue-url`, stores each answer under its job id, leaves failures for a retry
    /// (then the dead-letter queue).
    Worker {
        /// Stop after this long without a message (e.g. `30s`); runs until killed when unset.
        #[arg(long, env = "MESH_WORKER_IDLE_EXIT", value_parser = humantime::parse_duration)]
        idle_exit: Option<std::time::Duration>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Benchmarks that write reports.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Publish what the Lambda functions load (encoder, heads, data, embedding caches) to S3.
    Bundle {
        #[command(subcommand)]
        command: bundle::BundleCommand,
    },
}

/// `msp-mesh serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MESH_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Shut down when standard input closes (for supervisors and tests that own the process).
    #[arg(long, env = "MESH_EXIT_ON_STDIN_EOF")]
    pub exit_on_stdin_eof: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Runs every subcommand but `serve` (which the binary composes with the HTTP server).
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => anyhow::bail!("`serve` is run by the binary"),
        Command::Embed { model, texts } => runtime()?.block_on(embed::embed(model, texts)),
        Command::Models { command } => models::models(command),
        Command::Data { command } => data::data(command),
        Command::Prepare { model } => runtime()?.block_on(prepare::prepare_and_warm(&model)),
        Command::Score {
            model,
            agent,
            input,
            output,
            input_format,
            output_format,
            resume,
            window,
            fan_out_function,
            shard_bytes,
            concurrency,
            service,
        } => {
            let spool_dir = model.cache_dir().join("score");
            if let Some(function) = fan_out_function {
                #[cfg(not(feature = "aws"))]
                return Err(mesh_core::needs_aws_build(&format!(
                    "--fan-out-function {function} ({concurrency} shards of {shard_bytes} bytes)"
                )));
                #[cfg(feature = "aws")]
                {
                    let kind = mesh_core::agents::parse_agent(&agent)
                        .with_context(|| format!("unknown agent `{agent}`"))?;
                    let options = crate::aws::fanout::FanOutOptions {
                        function,
                        agent: kind,
                        input,
                        output,
                        shard_bytes: shard_bytes.max(1),
                        concurrency,
                        spool_dir,
                    };
                    return runtime()?.block_on(score::fan_out(options));
                }
            }
            let options = |agent| crate::batch::ScoreOptions {
                agent,
                input_format: crate::batch::Format::resolve(input_format, &input),
                output_format: crate::batch::Format::resolve(output_format, &output),
                input: input.clone(),
                output: output.clone(),
                resume,
                window: window.max(1),
                spool_dir,
            };
            runtime()?.block_on(score::score(model, &service, &agent, options))
        }
        Command::Partners { command } => partners::partners(command),
        Command::ClientHealth { command } => client_health::client_health(command),
        Command::Bundle { command } => bundle::bundle(command),
        Command::Bench { command } => bench::bench(command),
        Command::Worker {
            idle_exit,
            model,
            service,
        } => runtime()?.block_on(worker::worker(model, service, idle_exit)),
    }
}
