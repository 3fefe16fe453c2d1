//! `msp-mesh partners`: the partner directory of `/collaboration/match`, without a running
//! server. It reads and changes the directory where the servers keep it (the state store of
//! `--state-db` / `--state-backend`), so a running server serves the change on its next
//! request.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use mesh_core::ServiceArgs;

/// Where the directory lives: the state store, seeded by the partner file.
#[derive(Debug, Args)]
pub struct DirectoryArgs {
    /// Partner file that seeds the directory until it is first changed (the shipped sample
    /// set when absent).
    #[arg(
        long,
        env = "MESH_PARTNERS_FILE",
        default_value = "models/store/partners.json"
    )]
    partners_file: PathBuf,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Subcommand)]
pub enum PartnersCommand {
    /// Print the directory as JSON.
    List {
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Add partners from a JSON or CSV file (`.csv` is read as CSV); `--replace` replaces them all.
    Import {
        file: PathBuf,
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
}

/// Runs one `partners` subcommand.
pub fn partners(command: PartnersCommand) -> anyhow::Result<()> {
    use mesh_agents::partners;
    let open = |directory: &DirectoryArgs| -> anyhow::Result<_> {
        let seed = partners::seed_directory(Some(&directory.partners_file))?;
        let state = super::runtime::runtime()?
            .block_on(mesh_core::mesh::open_user_state(&directory.service))?;
        Ok((seed, state))
    };
    match command {
        PartnersCommand::List { directory } => {
            let (seed, state) = open(&directory)?;
            let stored = partners::read_directory(state.as_ref(), &seed)?;
            let file = partners::PartnerFile {
                sample_data: stored.sample_data,
                note: None,
                partners: stored.partners,
            };
            println!("{}", serde_json::to_string_pretty(&file)?);
            Ok(())
        }
        PartnersCommand::Import {
            file,
            replace,
            directory,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let csv = file
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("csv"));
            let list = partners::parse_partners(&text, csv)?;
            anyhow::ensure!(!list.is_empty(), "{} holds no partners", file.display());
            let n = list.len();
            let (seed, state) = open(&directory)?;
            let written = partners::change_directory(state.as_ref(), &seed, list, replace)?;
            println!(
                "imported {n} partners; the directory now holds {} (version {})",
                written.partners.len(),
                written.version
            );
            Ok(())
        }
    }
}
