//! One run: set up restaurants and tokens, open the screens, drive traffic
//! (with chaos if asked), let the screens settle, verify, report.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ordercast_core::auth::{Claims, TokenIssuer};
use rand::seq::index::sample;
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::chain::{self, ChainScreen};
use crate::ctx::{Ctx, Phase, Region, Restaurant};
use crate::driver;
use crate::ledger::{self, Viewer};
use crate::procstat::{self, Sample, Target, Usage};
use crate::report::{self, ExecResult, Report};
use crate::scenario::Scenario;
use crate::screens::{self, Screen};
use crate::verify::{self, ClientLog};

/// Mints tokens: with the deployment's HS256 secret or its token command.
enum Minter {
    Secret(TokenIssuer),
    Command(String),
}

impl Minter {
    async fn token(
        &self,
        role: &str,
        restaurant: &str,
        session: Option<String>,
        waiter: Option<String>,
    ) -> anyhow::Result<String> {
        match self {
            Minter::Secret(issuer) => Ok(issuer.mint(&Claims {
                restaurants: vec![restaurant.to_owned()],
                waiter_id: waiter.map(|w| w.parse()).transpose()?,
                session_id: session.map(|s| s.parse()).transpose()?,
                ..day_claims(
                    format!("loadtest-{role}"),
                    role.parse().map_err(anyhow::Error::msg)?,
                )?
            })),
            Minter::Command(command) => {
                let mut line =
                    format!("{command} --role {role} --restaurant '{restaurant}' --ttl 24h");
                if let Some(s) = session {
                    line += &format!(" --session {s}");
                }
                if let Some(w) = waiter {
                    line += &format!(" --waiter {w}");
                }
                run_token_command(command, &line).await
            }
        }
    }

    /// An admin of one chain: every restaurant of the chain, none other.
    async fn chain_admin(&self, chain: &str) -> anyhow::Result<String> {
        match self {
            Minter::Secret(issuer) => Ok(issuer.mint(&Claims {
                chain_id: Some(chain.parse()?),
                ..day_claims("loadtest-chain-admin".into(), ordercast_core::Role::Admin)?
            })),
            Minter::Command(command) => {
                let line = format!("{command} --role admin --chain {chain} --ttl 24h");
                run_token_command(command, &line).await
            }
        }
    }
}

/// Claims of `sub` as `role`, valid for a day from now, for the
/// deployment's default audience, naming nothing else.
pub(crate) fn day_claims(sub: String, role: ordercast_core::Role) -> anyhow::Result<Claims> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    Ok(Claims {
        sub,
        role,
        restaurants: Vec::new(),
        chain_id: None,
        waiter_id: None,
        session_id: None,
        exp: now + 24 * 3600,
        iat: Some(now),
        iss: None,
        aud: Some("ordercast".into()),
    })
}

/// Runs the token command line `line` and returns the token it printed.
async fn run_token_command(command: &str, line: &str) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .output()
        .await
        .with_context(|| format!("run the token command {command:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "the token command failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The deployment's regions: `--region`s, or one made of `--api` and
/// `--edge`.
fn regions_of(s: &Scenario) -> Vec<Region> {
    if s.regions.is_empty() {
        return vec![Region {
            name: "local".into(),
            apis: s.apis.clone(),
            edges: s.edges.clone().into(),
        }];
    }
    s.regions
        .iter()
        .map(|r| Region {
            name: r.name.clone(),
            apis: r.apis.clone(),
            edges: r.edges.clone().into(),
        })
        .collect()
}

/// Creates one restaurant through `apis` (the next one when one cannot
/// be reached); returns its id.
async fn create_restaurant(
    http: &reqwest::Client,
    apis: &[String],
    token: &str,
    body: &serde_json::Value,
) -> anyhow::Result<String> {
    let mut last = None;
    for api in apis {
        let api = api.trim_end_matches('/');
        let response = match http
            .post(format!("{api}/v1/restaurants"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                last = Some(anyhow::Error::new(e).context(format!("create a restaurant at {api}")));
                continue;
            }
        };
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "creating a restaurant at {api}: HTTP {status} {body}"
        );
        return Ok(body["id"]
            .as_str()
            .context("the restaurant has no id")?
            .to_owned());
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no api to create restaurants at")))
}

/// Creates the run's restaurants: through the first api, or in regions
/// mode homed round-robin over the regions, each through its home's api,
/// in one chain (`chain`) by that chain's admin.
async fn create_restaurants(
    s: &Scenario,
    regions: &[Region],
    minter: &Minter,
    chain: Option<(&str, &str)>,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<Restaurant>> {
    let admin = match chain {
        Some((_, token)) => token.to_owned(),
        None => minter.token("admin", "*", None, None).await?,
    };
    let mut out = Vec::with_capacity(s.restaurants);
    for i in 0..s.restaurants {
        let home = i % regions.len();
        let body = match chain {
            Some((chain, _)) => json!({"name": format!("Load test {i}"),
                "region": regions[home].name, "chain_id": chain}),
            None => json!({"name": format!("Load test {i}")}),
        };
        let apis = if chain.is_some() {
            &regions[home].apis[..]
        } else {
            &s.apis[..1]
        };
        let id = create_restaurant(http, apis, &admin, &body).await?;
        let owner = minter.token("owner", &id, None, None).await?;
        out.push(Restaurant { id, owner, home });
    }
    Ok(out)
}

/// Regions mode: waits until every restaurant is known in every region
/// (replication takes a moment); returns how long that took.
async fn await_replication(
    regions: &[Region],
    restaurants: &[Restaurant],
    http: &reqwest::Client,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut waiting: Vec<(usize, usize)> = (0..restaurants.len())
        .flat_map(|r| (0..regions.len()).map(move |g| (r, g)))
        .collect();
    loop {
        let mut still = Vec::new();
        for (r, g) in waiting {
            let api = regions[g].apis[r % regions[g].apis.len()].trim_end_matches('/');
            let known = http
                .get(format!("{api}/v1/restaurants/{}", restaurants[r].id))
                .bearer_auth(&restaurants[r].owner)
                .send()
                .await
                .is_ok_and(|resp| resp.status() == reqwest::StatusCode::OK);
            if !known {
                still.push((r, g));
            }
        }
        if still.is_empty() {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            let (r, g) = still[0];
            anyhow::bail!(
                "{} restaurants not known in every region after {} s (e.g. {} in {})",
                still.len(),
                deadline.duration_since(started).as_secs(),
                restaurants[r].id,
                regions[g].name
            );
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A number in `0..1` from `i`, the same every run (splitmix64).
fn unit(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The region screen `id` of a restaurant homed in `home` connects to:
/// its home, or by `remote_share` another one.
fn region_of_screen(id: usize, home: usize, regions: usize, remote_share: f64) -> usize {
    if regions < 2 || unit(id as u64) >= remote_share {
        return home;
    }
    let other = 1 + (unit(id as u64 ^ 0xA5A5_A5A5) * (regions - 1) as f64) as usize;
    (home + other.min(regions - 1)) % regions
}

/// The screens of every restaurant, with their tokens.
async fn plan_screens(
    s: &Scenario,
    minter: &Minter,
    regions: &[Region],
    restaurants: &[Restaurant],
) -> anyhow::Result<Vec<Screen>> {
    let mut screens = Vec::new();
    for (r, restaurant) in restaurants.iter().enumerate() {
        let owner: Arc<str> = restaurant.owner.as_str().into();
        let kitchen: Arc<str> = minter
            .token("kitchen", &restaurant.id, None, None)
            .await?
            .into();
        let mut viewers: Vec<(Viewer, Arc<str>)> = Vec::new();
        viewers.extend((0..s.owners).map(|_| (Viewer::Owner, owner.clone())));
        viewers.extend((0..s.kitchens).map(|_| (Viewer::Kitchen, kitchen.clone())));
        for w in 0..s.waiters {
            let t = minter
                .token("waiter", &restaurant.id, None, Some(format!("w{w}")))
                .await?;
            viewers.push((Viewer::Waiter(w as u16), t.into()));
        }
        for c in 0..s.customers {
            let t = minter
                .token("customer", &restaurant.id, Some(format!("s{c}")), None)
                .await?;
            viewers.push((Viewer::Customer(c as u16), t.into()));
        }
        for (viewer, token) in viewers {
            let id = screens.len();
            let region = region_of_screen(id, restaurant.home, regions.len(), s.remote_share);
            screens.push(Screen {
                id,
                restaurant: r,
                viewer,
                transport: s.transports.pick(id),
                token,
                region,
                edges: regions[region].edges.clone(),
                cut: Arc::new(Notify::new()),
            });
        }
    }
    Ok(screens)
}

/// Samples the watched processes every 500 ms until told to stop.
fn watch_processes(targets: Vec<Target>, stop: watch::Receiver<Phase>) -> Arc<Mutex<Vec<Usage>>> {
    let usage = Arc::new(Mutex::new(
        targets.iter().map(Usage::new).collect::<Vec<_>>(),
    ));
    let shared = usage.clone();
    tokio::spawn(async move {
        let mut stop = stop;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            {
                let mut u = shared.lock().expect("usage lock");
                for (t, u) in targets.iter().zip(u.iter_mut()) {
                    if let Some(s) = procstat::sample(t) {
                        u.observe(s);
                    }
                }
            }
            if *stop.borrow_and_update() == Phase::Done {
                break;
            }
        }
    });
    usage
}

/// Samples every process now, then marks the sample with `mark`.
fn snapshot(targets: &[Target], usage: &Mutex<Vec<Usage>>, mark: impl Fn(&mut Usage, Sample)) {
    let mut u = usage.lock().expect("usage lock");
    for (t, u) in targets.iter().zip(u.iter_mut()) {
        if let Some(s) = procstat::sample(t) {
            u.observe(s);
            mark(u, s);
        }
    }
}

/// Prints progress: a bar on a terminal, a line every 5 s otherwise.
fn progress(ctx: Arc<Ctx>, total: Duration, quiet: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let tty = std::io::stderr().is_terminal();
        let bar = indicatif::ProgressBar::new(total.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:24}] {pos}/{len}s {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        if !tty {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let (mut last_d, mut last_o) = (0, 0);
        let mut phase = ctx.phase.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = phase.wait_for(|p| *p != Phase::Traffic) => break,
            }
            let d = ctx.stats.delivered_total();
            let o = ctx.stats.orders.load(Relaxed);
            let p99 = ctx.stats.latency_all().value_at_quantile(0.99) as f64 / 1000.0;
            let msg = format!(
                "screens {} · orders/s {} · deliveries/s {} · p99 {p99:.2} ms · api errors {}",
                ctx.stats.open.load(Relaxed),
                o - last_o,
                d - last_d,
                ctx.stats.writes_refused.load(Relaxed) + ctx.stats.writes_lost.load(Relaxed),
            );
            (last_d, last_o) = (d, o);
            let secs = started.elapsed().as_secs();
            bar.set_position(secs.min(total.as_secs()));
            if tty {
                bar.set_message(msg);
            } else if secs.is_multiple_of(5) {
                eprintln!("[{secs:>4}s] {msg}");
            }
        }
        bar.finish_and_clear();
    })
}

/// How a chaos command ended, in words.
fn ended(output: &std::io::Result<std::process::Output>) -> String {
    match output {
        Ok(o) => report::exit_text(o.status.code()),
        Err(e) => format!("could not run: {e}"),
    }
}

/// Runs chaos commands at their times.
fn chaos_commands(s: &Scenario, from: Instant) -> JoinSet<ExecResult> {
    let mut set = JoinSet::new();
    for c in s.execs.clone() {
        set.spawn(async move {
            tokio::time::sleep_until((from + c.at).into()).await;
            let output = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&c.command)
                .output()
                .await;
            let at = humantime::format_duration(c.at);
            eprintln!("[chaos {at}] {} → {}", c.command, ended(&output));
            let (exit, output) = match output {
                Ok(o) => (
                    o.status.code(),
                    String::from_utf8_lossy(&[o.stdout, o.stderr].concat())
                        .trim()
                        .to_owned(),
                ),
                Err(e) => (None, e.to_string()),
            };
            ExecResult {
                at_s: c.at.as_secs_f64(),
                command: c.command,
                exit,
                output,
            }
        });
    }
    set
}

/// Cuts a share of the screens at once, every period, until traffic ends.
fn chaos_drops(ctx: Arc<Ctx>, cuts: Vec<Arc<Notify>>) {
    let (share, every) = (ctx.scenario.drop_share, ctx.scenario.drop_every);
    if share <= 0.0 || cuts.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
        while !ctx.traffic_over.load(Relaxed) {
            tick.tick().await;
            let n = ((cuts.len() as f64 * share).round() as usize).clamp(1, cuts.len());
            for i in sample(&mut rand::rng(), cuts.len(), n) {
                cuts[i].notify_one();
            }
        }
    });
}

/// Runs the scenario; `Err` only when the run could not be made at all.
pub async fn run(scenario: Scenario) -> anyhow::Result<Report> {
    scenario.validate()?;
    let minter = match (&scenario.jwt_secret, &scenario.token_command) {
        (_, Some(command)) => Minter::Command(command.clone()),
        (Some(secret), None) => Minter::Secret(TokenIssuer::hs256(secret.as_bytes())?),
        (None, None) => anyhow::bail!("no way to mint tokens"),
    };
    // Idle pooled connections are dropped well before the server's
    // keep-alive timeout (10 s by default), so a write never races the
    // server closing the connection it reuses.
    let api = reqwest::Client::builder()
        .pool_max_idle_per_host(scenario.max_in_flight)
        .pool_idle_timeout(Duration::from_secs(4))
        .timeout(Duration::from_secs(30))
        .build()?;
    let streams = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let regions = regions_of(&scenario);
    // Regions mode: one chain for the run, its admin creates the
    // restaurants and watches them all.
    let chain = if regions.len() > 1 {
        let id = ordercast_core::ChainId::new().to_string();
        let token = minter.chain_admin(&id).await?;
        Some((id, token))
    } else {
        None
    };
    let chain_ref = chain.as_ref().map(|(id, t)| (id.as_str(), t.as_str()));
    let restaurants = create_restaurants(&scenario, &regions, &minter, chain_ref, &api).await?;
    let replicated_in = if regions.len() > 1 {
        Some(await_replication(&regions, &restaurants, &api).await?)
    } else {
        None
    };
    let screens = plan_screens(&scenario, &minter, &regions, &restaurants).await?;
    let chain_screens: Vec<ChainScreen> = match &chain {
        Some((_, token)) => {
            let token: Arc<str> = token.as_str().into();
            regions
                .iter()
                .enumerate()
                .map(|(g, region)| ChainScreen {
                    id: screens.len() + g,
                    region: g,
                    edges: region.edges.clone(),
                    token: token.clone(),
                    cut: Arc::new(Notify::new()),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let (phase_tx, phase) = watch::channel(Phase::Traffic);
    let targets: Vec<Target> = scenario
        .pids
        .iter()
        .map(|p| Target::Pid(*p))
        .chain(scenario.pid_files.iter().cloned().map(Target::File))
        .chain(scenario.pid_trees.iter().map(|p| Target::Tree(*p)))
        .collect();
    let usage = watch_processes(targets.clone(), phase.clone());
    snapshot(&targets, &usage, |u, s| u.rss_before_kib = Some(s.rss_kib));
    let ctx = Arc::new(Ctx::new(
        scenario,
        regions,
        restaurants,
        phase,
        streams,
        api,
    ));
    let s = &ctx.scenario;

    // Open the screens (over the ramp) and wait until they are live.
    let n = screens.len() + chain_screens.len();
    let cuts: Vec<Arc<Notify>> = screens
        .iter()
        .map(|sc| sc.cut.clone())
        .chain(chain_screens.iter().map(|sc| sc.cut.clone()))
        .collect();
    let mut running: JoinSet<Vec<ClientLog>> = JoinSet::new();
    let opened = Instant::now();
    for (i, screen) in screens.into_iter().enumerate() {
        let ctx = ctx.clone();
        let delay = s.ramp.mul_f64(i as f64 / n.max(1) as f64);
        running.spawn(async move {
            tokio::time::sleep(delay).await;
            let start = ctx.ledger.book(screen.restaurant).head();
            vec![screens::run(ctx, screen, start).await]
        });
    }
    for screen in chain_screens {
        let ctx = ctx.clone();
        running.spawn(async move {
            let start = (0..ctx.restaurants.len())
                .map(|r| ctx.ledger.book(r).head())
                .collect();
            chain::run(ctx, screen, start).await
        });
    }
    let deadline = opened + s.ramp + Duration::from_secs(30);
    while (ctx.stats.open.load(Relaxed) as usize) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_time = opened.elapsed();
    if (ctx.stats.open.load(Relaxed) as usize) < n {
        ctx.note_failure(&format!(
            "only {} of {n} screens connected within {}",
            ctx.stats.open.load(Relaxed),
            humantime::format_duration(deadline - opened)
        ));
    }
    snapshot(&targets, &usage, |u, s| {
        u.rss_connected_kib = Some(s.rss_kib)
    });

    // Traffic, with chaos. A write is retried until the settle phase
    // would end on schedule.
    let traffic_start = Instant::now();
    let traffic_start_us = ctx.stats.now_us();
    ctx.retry_until_us.store(
        traffic_start_us + (s.warmup + s.duration + s.settle).as_micros() as u64,
        Relaxed,
    );
    let progress = progress(ctx.clone(), s.warmup + s.duration, s.quiet);
    let mut execs = chaos_commands(s, traffic_start);
    chaos_drops(ctx.clone(), cuts);
    let measure = {
        let (ctx, targets, usage) = (ctx.clone(), targets.clone(), usage.clone());
        let warmup = s.warmup;
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            ctx.stats.measuring.store(true, Relaxed);
            snapshot(&targets, &usage, |u, _| u.start_measuring());
            (ctx.stats.now_us(), ctx.stats.delivered_total())
        })
    };
    driver::drive(ctx.clone(), s.warmup + s.duration).await;
    let traffic_end_us = ctx.stats.now_us();
    let (measure_from_us, delivered_before) = measure.await.unwrap_or((traffic_start_us, 0));
    let delivered = ctx.stats.delivered_total() - delivered_before;
    snapshot(&targets, &usage, |u, _| u.stop_measuring(delivered));

    // Settle: screens read what is left, up to the deadline.
    let _ = phase_tx.send(Phase::Settle);
    let mut logs = Vec::with_capacity(n);
    let settle_deadline = tokio::time::Instant::now() + s.settle;
    loop {
        match tokio::time::timeout_at(settle_deadline, running.join_next()).await {
            Ok(Some(log)) => logs.extend(log.context("a screen task failed")?),
            Ok(None) => break,
            Err(_) => {
                let _ = phase_tx.send(Phase::Done);
                while let Some(log) = running.join_next().await {
                    logs.extend(log.context("a screen task failed")?);
                }
                break;
            }
        }
    }
    let settled_in = Duration::from_micros(ctx.stats.now_us() - traffic_end_us);
    let _ = phase_tx.send(Phase::Done);
    let _ = progress.await;
    if !s.linger.is_zero() {
        tokio::time::sleep(s.linger).await;
        snapshot(&targets, &usage, |u, s| u.rss_after_kib = Some(s.rss_kib));
    }
    let mut chaos = Vec::new();
    while let Some(r) = execs.join_next().await {
        chaos.push(r?);
    }
    chaos.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    logs.sort_by_key(|l| (l.id, l.restaurant));

    let books: Vec<_> = (0..ctx.ledger.restaurants())
        .map(|r| ctx.ledger.book(r))
        .collect();
    let book_refs: Vec<&ledger::Book> = books.iter().map(|b| &**b).collect();
    let verification = verify::verify(&book_refs, &logs, ctx.stats.writes_lost.load(Relaxed));
    let failures = ctx.failures();
    let usage = usage.lock().expect("usage lock").clone();
    Ok(report::build(report::Inputs {
        scenario: &ctx.scenario,
        stats: &ctx.stats,
        books: &book_refs,
        logs: &logs,
        verification,
        usage,
        chaos,
        failures,
        traffic_start_us,
        measure_from_us,
        traffic_end_us,
        connect_time,
        settled_in,
        regions: &ctx.regions,
        restaurants: &ctx.restaurants,
        replicated_in,
        retry_reasons: ctx.retry_reasons(),
    }))
}
