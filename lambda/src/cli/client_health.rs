//! `msp-mesh client-health`: train and list churn models without a running server.

use std::path::PathBuf;

use clap::Subcommand;

use super::prepare;

#[derive(Debug, Subcommand)]
pub enum ClientHealthCommand {
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

/// Runs one `client-health` subcommand.
pub fn client_health(command: ClientHealthCommand) -> anyhow::Result<()> {
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
                mesh_numeric::tabular::read_csv_records(&csv).map_err(|e| anyhow::anyhow!(e))?;
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
            for (id, versions) in store(&models_dir).list()? {
                let v: Vec<String> = versions.iter().map(|v| format!("v{v}")).collect();
                println!("{id:<24} {}", v.join(" "));
            }
            Ok(())
        }
    }
}
