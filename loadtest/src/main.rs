//! `ordercast-loadtest`: drives an Ordercast deployment and measures it.

mod orders;
mod report;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "ordercast-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Order-creation throughput and latency of the api (open loop, fixed rate).
    Orders(orders::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Orders(args) => orders::run(args).await,
    }
}
