//! `ordercast-loadtest`: drives an Ordercast deployment, verifies that every
//! screen got exactly what it was entitled to, and measures it.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ordercast_loadtest::scenario::{Scenario, expand_scenario_file};
use ordercast_loadtest::{html, orders, report};

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
    /// Screens on SSE / WebSocket / long-poll and orders walking their life
    /// cycle; verifies exactly-once delivery and reports latency.
    /// `--scenario FILE.toml` takes the same options as TOML keys; a flag
    /// given twice takes the last value.
    #[command(args_override_self = true)]
    Run(Box<Scenario>),
    /// Order-creation throughput and latency of the api alone (open loop).
    Orders(orders::Args),
}

fn write(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))
}

#[allow(clippy::print_stdout, reason = "the summary is the command's output")]
async fn scenario(s: Scenario) -> anyhow::Result<bool> {
    let (json, html_file) = (s.json.clone(), s.report.clone());
    let r = ordercast_loadtest::run::run(s).await?;
    println!("{}", report::summary(&r));
    if let Some(path) = json {
        write(&path, &serde_json::to_vec_pretty(&r)?)?;
        println!("  JSON:   {}", path.display());
    }
    if let Some(path) = html_file {
        write(&path, html::render(&r).as_bytes())?;
        println!("  report: {}", path.display());
    }
    Ok(r.passed)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // One line, the reason and its causes, whatever RUST_BACKTRACE
            // says.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; `false` when the run failed its checks.
async fn run() -> anyhow::Result<bool> {
    let argv = expand_scenario_file(std::env::args().collect())?;
    let passed = match Cli::parse_from(argv).command {
        Command::Run(s) => scenario(*s).await?,
        Command::Orders(args) => {
            orders::run(args).await?;
            true
        }
    };
    Ok(passed)
}
