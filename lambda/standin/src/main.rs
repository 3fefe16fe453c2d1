//! `aws-standin`: serves the stand-in of Amazon Comprehend, the Bedrock runtime and the API
//! Gateway management API until killed.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;

/// A stand-in for Comprehend, the Bedrock runtime and the API Gateway management API.
#[derive(Debug, Parser)]
#[command(name = "aws-standin", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MESH_STANDIN_ADDR", default_value = "127.0.0.1:4599")]
    addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    tracing::info!(
        "AWS stand-in (Comprehend, Bedrock runtime) on http://{}",
        args.addr
    );
    mesh_standin::serve(listener, Default::default()).await?;
    Ok(())
}
