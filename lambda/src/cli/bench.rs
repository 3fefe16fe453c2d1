//! `msp-mesh bench compare`: the model comparison of [`mesh_compare`], with the cloud providers
//! as candidates when asked.

use std::path::PathBuf;

use clap::Subcommand;
use mesh_core::ModelArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Every available model of a task on the same labelled records: accuracy, macro F1 and
    /// ROC-AUC with 95% bootstrap intervals, latency, throughput and cost per 1,000 records, as
    /// `report.json`, `report.md` and `report.html` (with plots).
    Compare {
        #[arg(long, value_enum)]
        task: mesh_compare::Task,
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

/// Runs one `bench` subcommand.
pub fn bench(command: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Compare {
        task,
        data,
        out,
        seed,
        bootstrap,
        comprehend,
        bedrock,
        encoder_variants,
        model,
    } = command;
    let cloud = if comprehend || bedrock {
        let config = super::runtime::runtime()?.block_on(mesh_cloud::aws_config());
        let resilience = model.cloud.resilience();
        mesh_compare::CloudCandidates {
            comprehend: comprehend
                .then(|| std::sync::Arc::new(mesh_cloud::Comprehend::new(&config, resilience))),
            bedrock: bedrock.then(|| {
                std::sync::Arc::new(mesh_cloud::Bedrock::new(
                    &config,
                    &model.cloud.bedrock_model,
                    model.cloud.bedrock_api(),
                    resilience,
                ))
            }),
        }
    } else {
        Default::default()
    };
    let options = mesh_compare::CompareOptions {
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
    let report = mesh_compare::run(&options, &bar)?;
    bar.finish_and_clear();
    print!("{}", mesh_compare::markdown(&report));
    eprintln!("reports in {}", options.out_dir.display());
    Ok(())
}
