//! `msp-mesh bundle`: publish what the Lambda functions load to S3, or list it.

use anyhow::Context;
use clap::Subcommand;
use mesh_core::ModelArgs;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
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

/// Runs one `bundle` subcommand.
pub fn bundle(command: BundleCommand) -> anyhow::Result<()> {
    match command {
        BundleCommand::Push { to, model } => {
            let bar = crate::progress::bar(0, format!("uploading to {to}"));
            let manifest = super::runtime::runtime()?.block_on(mesh_core::bundle::push(
                &model,
                &to,
                &|files| bar.set_length(files as u64),
                &|done| bar.set_position(done as u64),
            ))?;
            bar.finish_and_clear();
            println!(
                "published {} files ({:.1} MB) to {to}",
                manifest.files.len(),
                manifest.bytes() as f64 / 1e6
            );
        }
        BundleCommand::List { model } => {
            let files = mesh_core::bundle::bundle_files(&model)?;
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
