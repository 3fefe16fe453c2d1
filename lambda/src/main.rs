//! `msp-mesh`: the command line. `serve` prepares what is missing, loads the mesh and serves
//! the HTTP API (under AWS Lambda when `AWS_LAMBDA_RUNTIME_API` is set); every other
//! subcommand runs through [`mesh_lambda::cli::run`].

use clap::Parser;
use mesh_lambda::cli::{self, Cli, Command, ServeArgs};
use mesh_lambda::http;

fn main() -> anyhow::Result<()> {
    mesh_inference::tune_cpu_threads();
    cli::init_logging();
    match Cli::parse().command {
        Command::Serve(args) => cli::runtime()?.block_on(serve(args)),
        command => cli::run(command),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    cli::prepare::before_loading(&args.model).await?;
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let listen = (!on_lambda).then_some(args.addr);
    let state = http::AppState::load(&args.model, &args.service, listen).await?;
    if on_lambda {
        #[cfg(feature = "aws")]
        return mesh_lambda::aws::lambda_http::run(http::router(state))
            .await
            .map_err(|e| anyhow::anyhow!(e));
        #[cfg(not(feature = "aws"))]
        return Err(mesh_core::needs_aws_build("serving under AWS Lambda"));
    }
    http::serve(state, args.addr, args.exit_on_stdin_eof).await
}
