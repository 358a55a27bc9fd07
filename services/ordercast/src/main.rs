use std::process::ExitCode;

use clap::Parser;
use ordercast::app::Role;
use ordercast::config::{Cli, Command, MigrateArgs, ServeArgs, serve_settings};
use ordercast::{App, telemetry, token};
use ordercast_store::Store;

// mimalloc: measured less CPU and far less RSS than glibc malloc under load
// (docs/performance.md). The `system-allocator` feature leaves it out, for
// heap profilers that intercept malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the reason and its causes, whatever RUST_BACKTRACE
            // says: these are configuration and start-up errors, not bugs.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Token(args) = &cli.command {
        #[allow(clippy::print_stdout, reason = "the token is the command's output")]
        {
            println!("{}", token::mint(args)?);
        }
        return Ok(());
    }
    let role = match cli.command {
        Command::Api(_) => Some(Role::Api),
        Command::Edge(_) => Some(Role::Edge),
        Command::All(_) => Some(Role::All),
        Command::Migrate(_) | Command::Token(_) => None,
    };
    let _telemetry = telemetry::init(cli.log_format, telemetry::service_name(role))?;
    match cli.command {
        Command::Migrate(args) => migrate(&args).await?,
        Command::Api(args) => serve(&args, Role::Api).await?,
        Command::Edge(args) => serve(&args, Role::Edge).await?,
        Command::All(args) => serve(&args, Role::All).await?,
        Command::Token(_) => unreachable!("handled above"),
    }
    Ok(())
}

/// `ordercast migrate`. Its statements may take long (building an index,
/// waiting for another migrate's lock): PostgreSQL does not time them out.
async fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let mut settings = args.db.settings()?;
    settings.statement_timeout = None;
    let store = Store::connect_lazy(&settings);
    ordercast::migrate(&store, &args.regions.region, &args.regions.databases()?).await?;
    Ok(())
}

async fn serve(args: &ServeArgs, role: Role) -> anyhow::Result<()> {
    App::build(serve_settings(args, role)?)
        .await?
        .run(shutdown_signal())
        .await
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
