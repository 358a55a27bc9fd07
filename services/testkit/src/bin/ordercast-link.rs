//! `ordercast-link`: named, delaying, partitionable TCP links between the
//! regions of a local multi-region rig, steered over HTTP by shell scripts.
//!
//! ```text
//! ordercast-link --control 127.0.0.1:7600 --delay 40ms \
//!     --link 'pg-eu-us=127.0.0.1:15432>127.0.0.1:5432' \
//!     --link 'redis-eu-us=127.0.0.1:16379>127.0.0.1:6379'
//! curl -s http://127.0.0.1:7600/links
//! curl -X POST http://127.0.0.1:7600/links/all/cut
//! curl -X POST 'http://127.0.0.1:7600/links/pg-eu-us/blackhole'
//! curl -X POST 'http://127.0.0.1:7600/links/redis-*/heal'
//! curl -X PUT 'http://127.0.0.1:7600/links/all/delay?ms=80'
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clap::Parser;
use ordercast_testkit::Link;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(name = "ordercast-link", version, about)]
struct Cli {
    /// Address of the control HTTP API: `GET /links`;
    /// `POST /links/{SELECTOR}/cut`, `/blackhole`, `/heal`;
    /// `PUT /links/{SELECTOR}/delay?ms=N`. SELECTOR is a link's name, `all`,
    /// or a name prefix followed by `*`.
    #[arg(long, value_name = "ADDR")]
    control: String,
    /// A link, repeatable: NAME=LISTEN>UPSTREAM, e.g.
    /// 'pg-eu-us=127.0.0.1:15432>127.0.0.1:5432' (quote the `>` from the
    /// shell). NAME: letters, digits, `-`, `_`, `.`.
    #[arg(long = "link", value_name = "NAME=LISTEN>UPSTREAM", required = true)]
    links: Vec<String>,
    /// One-way delay every link starts with, each direction, e.g. `40ms`.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    delay: String,
}

/// A link as given on the command line.
#[derive(Debug, PartialEq)]
struct Spec {
    name: String,
    listen: String,
    upstream: String,
}

/// A running link and its name.
struct Named {
    name: String,
    link: Link,
}

type Links = Arc<Vec<Named>>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (control, links) = match start(cli).await {
        Ok(started) => started,
        Err(e) => {
            // One line: these are start-up errors, not bugs.
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match serve(control, links).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds the control address and starts every link; prints where each one
/// listens once all are.
async fn start(cli: Cli) -> anyhow::Result<(TcpListener, Vec<Named>)> {
    let delay: Duration =
        humantime::parse_duration(&cli.delay).with_context(|| format!("--delay {}", cli.delay))?;
    let specs = cli
        .links
        .iter()
        .map(|arg| parse_spec(arg).with_context(|| format!("--link {arg}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|other| other.name == spec.name) {
            bail!("--link: the name {} is given twice", spec.name);
        }
    }
    let control_addr = resolve(&cli.control).await.context("--control")?;
    let control = TcpListener::bind(control_addr)
        .await
        .with_context(|| format!("--control: bind {control_addr}"))?;
    let mut links = Vec::with_capacity(specs.len());
    for spec in specs {
        let context = || format!("link {}", spec.name);
        let listen = resolve(&spec.listen).await.with_context(context)?;
        let upstream = resolve(&spec.upstream).await.with_context(context)?;
        let link = Link::start(listen, upstream, delay)
            .await
            .with_context(|| format!("link {}: bind {listen}", spec.name))?;
        links.push(Named {
            name: spec.name,
            link,
        });
    }
    #[allow(
        clippy::print_stdout,
        reason = "the rig's scripts read where each link listens"
    )]
    {
        println!("control http://{}", control.local_addr()?);
        for Named { name, link } in &links {
            println!(
                "link {name} {} -> {} ({} each way)",
                link.addr(),
                link.upstream(),
                humantime::format_duration(link.delay())
            );
        }
    }
    Ok((control, links))
}

/// `NAME=LISTEN>UPSTREAM`.
fn parse_spec(arg: &str) -> anyhow::Result<Spec> {
    let Some((name, rest)) = arg.split_once('=') else {
        bail!("expected NAME=LISTEN>UPSTREAM");
    };
    let Some((listen, upstream)) = rest.split_once('>') else {
        bail!("expected NAME=LISTEN>UPSTREAM");
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || !name.chars().all(valid) {
        bail!("a link's name is letters, digits, '-', '_' and '.', not {name:?}");
    }
    if name == "all" {
        bail!("`all` names every link; pick another name");
    }
    if listen.is_empty() || upstream.is_empty() {
        bail!("expected NAME=LISTEN>UPSTREAM");
    }
    Ok(Spec {
        name: name.to_owned(),
        listen: listen.trim().to_owned(),
        upstream: upstream.trim().to_owned(),
    })
}

/// `HOST:PORT` to its first address.
async fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("address {addr}"))?
        .next()
        .with_context(|| format!("address {addr}: resolves to nothing"))
}

/// Serves the control API until SIGTERM or SIGINT; the links stop with it.
async fn serve(control: TcpListener, links: Vec<Named>) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let stopped = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(control, router(Arc::new(links)))
        .with_graceful_shutdown(stopped)
        .await
        .context("control server")
}

fn router(links: Links) -> Router {
    Router::new()
        .route("/links", get(list))
        .route("/links/{selector}/cut", post(cut))
        .route("/links/{selector}/blackhole", post(blackhole))
        .route("/links/{selector}/heal", post(heal))
        .route("/links/{selector}/delay", put(set_delay))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".to_owned()) })
        .with_state(links)
}

/// One link, as `GET /links` and every action report it.
#[derive(Serialize)]
struct Info {
    name: String,
    listen: SocketAddr,
    upstream: SocketAddr,
    state: &'static str,
    delay_ms: u64,
}

impl From<&Named> for Info {
    fn from(named: &Named) -> Self {
        Info {
            name: named.name.clone(),
            listen: named.link.addr(),
            upstream: named.link.upstream(),
            state: named.link.state().as_str(),
            delay_ms: u64::try_from(named.link.delay().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

type Failure = (StatusCode, Json<ErrorBody>);

fn error(status: StatusCode, error: String) -> Failure {
    (status, Json(ErrorBody { error }))
}

/// The links `selector` names: one by its name, `all`, or those whose names
/// start with `prefix` for `prefix*`. None is a 404.
fn select<'a>(links: &'a [Named], selector: &str) -> Result<Vec<&'a Named>, Failure> {
    let chosen: Vec<&Named> = match (selector, selector.strip_suffix('*')) {
        ("all", _) => links.iter().collect(),
        (_, Some(prefix)) => links
            .iter()
            .filter(|n| n.name.starts_with(prefix))
            .collect(),
        (name, None) => links.iter().filter(|n| n.name == name).collect(),
    };
    if chosen.is_empty() {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no link matches {selector:?}"),
        ));
    }
    Ok(chosen)
}

/// Applies `action` to the selected links and reports them.
fn act(
    links: &[Named],
    selector: &str,
    action: impl Fn(&Link),
) -> Result<Json<Vec<Info>>, Failure> {
    let chosen = select(links, selector)?;
    for named in &chosen {
        action(&named.link);
    }
    Ok(Json(chosen.into_iter().map(Info::from).collect()))
}

async fn list(State(links): State<Links>) -> Json<Vec<Info>> {
    Json(links.iter().map(Info::from).collect())
}

async fn cut(
    State(links): State<Links>,
    Path(selector): Path<String>,
) -> Result<Json<Vec<Info>>, Failure> {
    act(&links, &selector, Link::cut)
}

async fn blackhole(
    State(links): State<Links>,
    Path(selector): Path<String>,
) -> Result<Json<Vec<Info>>, Failure> {
    act(&links, &selector, Link::blackhole)
}

async fn heal(
    State(links): State<Links>,
    Path(selector): Path<String>,
) -> Result<Json<Vec<Info>>, Failure> {
    act(&links, &selector, Link::heal)
}

#[derive(Deserialize)]
struct DelayQuery {
    ms: u64,
}

async fn set_delay(
    State(links): State<Links>,
    Path(selector): Path<String>,
    Query(DelayQuery { ms }): Query<DelayQuery>,
) -> Result<Json<Vec<Info>>, Failure> {
    act(&links, &selector, |link| {
        link.set_delay(Duration::from_millis(ms))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_name_listen_and_upstream() {
        assert_eq!(
            parse_spec("pg-eu-us=127.0.0.1:15432>127.0.0.1:5432").unwrap(),
            Spec {
                name: "pg-eu-us".into(),
                listen: "127.0.0.1:15432".into(),
                upstream: "127.0.0.1:5432".into(),
            }
        );
        for bad in [
            "pg-eu-us",
            "pg=127.0.0.1:1",
            "=127.0.0.1:1>127.0.0.1:2",
            "a/b=127.0.0.1:1>127.0.0.1:2",
            "eu*=127.0.0.1:1>127.0.0.1:2",
            "all=127.0.0.1:1>127.0.0.1:2",
            "pg=>127.0.0.1:2",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad} parsed");
        }
    }

    #[tokio::test]
    async fn a_link_selector_is_a_name_all_or_a_prefix() {
        let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut links = Vec::new();
        for name in ["eu-us-pg", "eu-us-redis", "us-eu-pg"] {
            let link = Link::start("127.0.0.1:0".parse().unwrap(), upstream, Duration::ZERO)
                .await
                .unwrap();
            links.push(Named {
                name: name.into(),
                link,
            });
        }
        let names = |selector| {
            select(&links, selector)
                .map(|chosen| chosen.iter().map(|n| n.name.as_str()).collect::<Vec<_>>())
        };
        assert_eq!(
            names("all").unwrap(),
            ["eu-us-pg", "eu-us-redis", "us-eu-pg"]
        );
        assert_eq!(names("eu-us*").unwrap(), ["eu-us-pg", "eu-us-redis"]);
        assert_eq!(names("*").unwrap().len(), 3);
        assert_eq!(names("us-eu-pg").unwrap(), ["us-eu-pg"]);
        assert_eq!(names("eu-us").unwrap_err().0, StatusCode::NOT_FOUND);
        assert_eq!(names("xx*").unwrap_err().0, StatusCode::NOT_FOUND);
    }
}
