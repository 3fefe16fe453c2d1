//! `msp-mesh partners`: the partner directory of `/collaboration/match`, without a running server.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PartnersCommand {
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

/// Runs one `partners` subcommand.
pub fn partners(command: PartnersCommand) -> anyhow::Result<()> {
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
