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

fn main() -> ExitCode {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    #[cfg(not(feature = "system-allocator"))]
    runtime.on_thread_park(idle::collect);
    let runtime = runtime.build().expect("a Tokio runtime");
    runtime.block_on(exit_code(Cli::parse()))
}

/// Freed memory goes back to the OS when the process goes quiet.
///
/// mimalloc returns a thread's free pages to the OS only from within that
/// thread's own allocator calls. A worker thread that goes idle after a
/// load would keep them for as long as it stays idle: an edge whose 15,000
/// screens had all left kept its peak RSS (200 MiB) indefinitely
/// (docs/performance.md, "RSS under load on one edge"). So a worker that
/// parks (has nothing to run) collects its heap, at most once a second.
#[cfg(not(feature = "system-allocator"))]
mod idle {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// Least time between two collections by one thread.
    const EVERY: Duration = Duration::from_secs(1);

    thread_local! {
        static COLLECTED: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    pub(crate) fn collect() {
        let now = Instant::now();
        let due = COLLECTED
            .get()
            .is_none_or(|at| now.duration_since(at) >= EVERY);
        if due {
            COLLECTED.set(Some(now));
            // SAFETY: `mi_collect` takes no pointers and may be called from
            // any thread at any time; `false` frees what is free without
            // forcing (cheap), and mimalloc is the global allocator.
            #[allow(unsafe_code)]
            unsafe {
                libmimalloc_sys::mi_collect(false);
            }
        }
    }
}

async fn exit_code(cli: Cli) -> ExitCode {
    match run(cli).await {
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
