//! What a run does, from flags or a TOML file (`--scenario FILE`) whose
//! keys are the long flag names: `rate = 200`, `edge = ["http://…", …]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// One run of the load tester.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Scenario {
    /// Base URL of an api (repeatable; writes are spread over them).
    /// Not needed with `--region`.
    #[arg(long = "api", required_unless_present = "regions")]
    pub apis: Vec<String>,
    /// Base URL of an edge (repeatable; clients are spread over them, and
    /// move to the next one when theirs fails). Not needed with `--region`.
    #[arg(long = "edge", required_unless_present = "regions")]
    pub edges: Vec<String>,
    /// Regions mode: a region of the deployment as
    /// `NAME=API[,API…]@EDGE[,EDGE…]` (repeatable, at least two).
    /// Restaurants are homed round-robin over the regions; screens and
    /// writes go to their home or, by `--remote-share` and
    /// `--forward-share`, to another region.
    #[arg(long = "region")]
    pub regions: Vec<RegionSpec>,
    /// Regions mode: share of screens connected to an edge of a region
    /// other than their restaurant's home.
    #[arg(long, default_value_t = 0.5)]
    pub remote_share: f64,
    /// Regions mode: share of orders (with all their writes) and
    /// notifications sent through the api of a region other than the
    /// restaurant's home, which forwards them home.
    #[arg(long, default_value_t = 0.2)]
    pub forward_share: f64,
    /// HS256 secret of the deployment, to mint tokens.
    #[arg(long, env = "ORDERCAST_JWT_SECRET", hide_env_values = true)]
    #[serde(skip)]
    pub jwt_secret: Option<String>,
    /// Instead of a secret: a command that prints a token. It is run by
    /// `sh -c` with `--role R --restaurant ID` (and `--session S`,
    /// `--waiter W`, `--ttl 24h`) appended, e.g. `ordercast token`.
    #[arg(long)]
    pub token_command: Option<String>,

    /// Restaurants to create; each gets its own screens and orders.
    #[arg(long, default_value_t = 10)]
    pub restaurants: usize,
    /// Kitchen displays per restaurant.
    #[arg(long, default_value_t = 2)]
    pub kitchens: usize,
    /// Owner dashboards per restaurant.
    #[arg(long, default_value_t = 1)]
    pub owners: usize,
    /// Waiter handhelds per restaurant (waiter `w0`, `w1`, …).
    #[arg(long, default_value_t = 2)]
    pub waiters: usize,
    /// Customer table screens per restaurant (table session `s0`, `s1`, …).
    #[arg(long, default_value_t = 2)]
    pub customers: usize,
    /// Table sessions orders are spread over (more than `customers`, so
    /// some orders belong to tables nobody watches).
    #[arg(long, default_value_t = 6)]
    pub sessions: usize,
    /// Waiter ids orders are assigned to (more than `waiters`).
    #[arg(long, default_value_t = 3)]
    pub waiter_ids: usize,
    /// Share of screens on each transport, e.g. `sse=50,ws=40,poll=10`.
    #[arg(long, default_value = "sse=50,ws=40,poll=10")]
    pub transports: Mix,

    /// New orders per second, overall (open loop: on schedule whatever the
    /// server does). 0 holds connections without traffic.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// `full`: every order walks new → accepted → in progress → items
    /// cooking → items ready (→ order ready) → served → paid, some are
    /// cancelled; `create`: one `order.created` event per order;
    /// `publish`: no orders, `--rate` custom `x.bench` events per second
    /// for the kitchen through `POST …/events` (the fan-out benchmark).
    #[arg(long, value_enum, default_value_t = Lifecycle::Full)]
    pub lifecycle: Lifecycle,
    /// `--lifecycle publish`: bytes of each event's `data`.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Pause between two steps of one order, uniformly within this range.
    #[arg(long, default_value = "300ms..1500ms")]
    pub step_delay: DelayRange,
    /// Share of orders cancelled instead of cooked.
    #[arg(long, default_value_t = 0.05)]
    pub cancel_share: f64,
    /// Share of orders whose table also calls the waiter (request created,
    /// then acknowledged, in progress and resolved).
    #[arg(long, default_value_t = 0.2)]
    pub request_share: f64,
    /// Notifications per second, overall (kitchen-wide urgent ones and
    /// ones targeted at one waiter).
    #[arg(long, default_value_t = 1.0)]
    pub notification_rate: f64,

    /// Measured duration of traffic.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
    /// Traffic before measuring starts (latency not recorded; delivery
    /// still verified).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "as_secs")]
    pub warmup: Duration,
    /// Open the screens evenly over this time instead of all at once.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "as_secs")]
    pub ramp: Duration,
    /// After traffic stops, how long screens may take to receive the last
    /// events before what they lack counts as lost.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "as_secs")]
    pub settle: Duration,
    /// Most api requests in flight.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,

    /// Chaos: every `drop-every`, cut this share of the screens' connections
    /// at once; they resume by cursor at once.
    #[arg(long, default_value_t = 0.0)]
    pub drop_share: f64,
    /// Chaos: how often connections are cut.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "as_secs")]
    pub drop_every: Duration,
    /// Chaos: `OFFSET=COMMAND`, run by `sh -c` OFFSET after traffic starts
    /// (repeatable), e.g. `20s=kill -9 $(cat edge1.pid)`.
    #[arg(long = "exec")]
    pub execs: Vec<TimedCommand>,

    /// Sample CPU time and RSS of this server process (repeatable).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Like `--pid`, reading the pid from a file at every sample (for
    /// processes restarted during the run).
    #[arg(long = "pid-file")]
    pub pid_files: Vec<PathBuf>,
    /// Like `--pid`, counting the CPU time of every process it started
    /// too (PostgreSQL's postmaster: the whole server).
    #[arg(long = "pid-tree")]
    pub pid_trees: Vec<u32>,
    /// After every screen has closed, wait this long and read the
    /// processes' RSS again: whether their memory comes back after load.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    #[serde(serialize_with = "as_secs")]
    pub linger: Duration,

    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HTML report with plots to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Fail the run when the delivery p99 (commit → read) exceeds this.
    #[arg(long)]
    pub slo_p99_ms: Option<f64>,
    /// Fail the run when more events than this are lost (0: any loss
    /// fails). Other violations always fail the run.
    #[arg(long, default_value_t = 0)]
    pub slo_lost: u64,
    /// No progress bar or periodic lines.
    #[arg(long)]
    pub quiet: bool,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Scenario {
    /// Screens per restaurant.
    pub fn screens_per_restaurant(&self) -> usize {
        self.kitchens + self.owners + self.waiters + self.customers
    }

    /// Refuses settings that cannot make a run.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.restaurants > 0, "--restaurants must be at least 1");
        if self.regions.is_empty() {
            anyhow::ensure!(
                !self.apis.is_empty() && !self.edges.is_empty(),
                "give --api and --edge, or --region for each region"
            );
        } else {
            anyhow::ensure!(
                self.regions.len() >= 2,
                "regions mode needs at least two --region"
            );
            for (i, r) in self.regions.iter().enumerate() {
                anyhow::ensure!(
                    !self.regions[..i].iter().any(|o| o.name == r.name),
                    "--region {} is given twice",
                    r.name
                );
            }
            anyhow::ensure!(
                self.restaurants <= MAX_CHAIN_SUBSCRIPTIONS,
                "regions mode: each region's chain admin subscribes to every restaurant on \
                 one WebSocket, at most {MAX_CHAIN_SUBSCRIPTIONS} (the edge's default \
                 ORDERCAST_MAX_SUBSCRIPTIONS); --restaurants is {}",
                self.restaurants
            );
        }
        anyhow::ensure!(
            self.jwt_secret.is_some() || self.token_command.is_some(),
            "give --jwt-secret (or ORDERCAST_JWT_SECRET) or --token-command"
        );
        anyhow::ensure!(
            self.customers <= self.sessions,
            "--customers ({}) must not exceed --sessions ({})",
            self.customers,
            self.sessions
        );
        anyhow::ensure!(
            self.waiters <= self.waiter_ids,
            "--waiters ({}) must not exceed --waiter-ids ({})",
            self.waiters,
            self.waiter_ids
        );
        anyhow::ensure!(
            self.sessions > 0 && self.waiter_ids > 0,
            "need sessions and waiter ids"
        );
        for share in [
            self.cancel_share,
            self.request_share,
            self.drop_share,
            self.remote_share,
            self.forward_share,
        ] {
            anyhow::ensure!((0.0..=1.0).contains(&share), "shares are within 0..=1");
        }
        anyhow::ensure!(
            self.rate >= 0.0 && self.notification_rate >= 0.0,
            "rates are ≥ 0"
        );
        anyhow::ensure!(!self.drop_every.is_zero(), "--drop-every must be > 0");
        Ok(())
    }
}

/// Most restaurants one chain admin WebSocket subscribes to (the edge's
/// default `ORDERCAST_MAX_SUBSCRIPTIONS`).
pub const MAX_CHAIN_SUBSCRIPTIONS: usize = 100;

/// A region of the deployment: `NAME=API[,API…]@EDGE[,EDGE…]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionSpec {
    pub name: String,
    pub apis: Vec<String>,
    pub edges: Vec<String>,
}

impl FromStr for RegionSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("{s:?}: expected NAME=API[,API…]@EDGE[,EDGE…]");
        let (name, rest) = s.split_once('=').ok_or_else(usage)?;
        let (apis, edges) = rest.rsplit_once('@').ok_or_else(usage)?;
        let name = name.trim();
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if name.is_empty() || name.len() > 32 || !name.chars().all(valid) {
            return Err(format!(
                "{name:?}: a region's name is 1–32 of a-z, 0-9 and '-'"
            ));
        }
        let urls = |list: &str| -> Result<Vec<String>, String> {
            let urls: Vec<String> = list
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty())
                .collect();
            if urls.is_empty() {
                return Err(usage());
            }
            match urls
                .iter()
                .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
            {
                Some(bad) => Err(format!("{bad:?}: not an http(s) URL")),
                None => Ok(urls),
            }
        };
        Ok(RegionSpec {
            name: name.to_owned(),
            apis: urls(apis)?,
            edges: urls(edges)?,
        })
    }
}

/// Order life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Full,
    Create,
    Publish,
}

/// Which transport a screen uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Sse = 0,
    Ws = 1,
    Poll = 2,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Sse, Transport::Ws, Transport::Poll];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::Poll => "poll",
        }
    }
}

/// Transport shares, as weights.
#[derive(Debug, Clone, Serialize)]
pub struct Mix(pub BTreeMap<&'static str, u32>);

impl Mix {
    /// The transport of screen `i` of `n`: shares are laid out evenly, so
    /// every restaurant gets the mix too.
    pub fn pick(&self, i: usize) -> Transport {
        let total: u32 = self.0.values().sum();
        let slot = (i as u64 * 7919 % u64::from(total)) as u32;
        let mut acc = 0;
        for t in Transport::ALL {
            acc += self.0.get(t.as_str()).copied().unwrap_or(0);
            if slot < acc {
                return t;
            }
        }
        unreachable!("the slot is below the total")
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected NAME=WEIGHT"))?;
            let t = Transport::ALL
                .into_iter()
                .find(|t| t.as_str() == name.trim())
                .ok_or_else(|| format!("unknown transport {name:?} (sse, ws, poll)"))?;
            let w = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: weight is a whole number"))?;
            mix.insert(t.as_str(), w);
        }
        if mix.values().sum::<u32>() == 0 {
            return Err("the transport weights add up to 0".into());
        }
        Ok(Mix(mix))
    }
}

/// `MIN..MAX` durations, e.g. `300ms..1500ms`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DelayRange {
    #[serde(serialize_with = "as_secs")]
    pub min: Duration,
    #[serde(serialize_with = "as_secs")]
    pub max: Duration,
}

impl FromStr for DelayRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = |p: &str| humantime::parse_duration(p.trim()).map_err(|e| format!("{p}: {e}"));
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(s)?, parse(s)?),
        };
        if min > max {
            return Err(format!("{s}: the minimum is above the maximum"));
        }
        Ok(DelayRange { min, max })
    }
}

/// `OFFSET=COMMAND`.
#[derive(Debug, Clone, Serialize)]
pub struct TimedCommand {
    #[serde(serialize_with = "as_secs")]
    pub at: Duration,
    pub command: String,
}

impl FromStr for TimedCommand {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (at, command) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected OFFSET=COMMAND, e.g. 20s=…"))?;
        let at = humantime::parse_duration(at.trim()).map_err(|e| format!("{at}: {e}"))?;
        Ok(TimedCommand {
            at,
            command: command.to_owned(),
        })
    }
}

/// Expands `--scenario FILE` in `argv` into the flags its TOML keys name,
/// placed before the command line's own flags so those win.
pub fn expand_scenario_file(argv: Vec<String>) -> anyhow::Result<Vec<String>> {
    let Some(at) = argv
        .iter()
        .position(|a| a == "--scenario" || a.starts_with("--scenario="))
    else {
        return Ok(argv);
    };
    let (path, consumed) = match argv[at].split_once('=') {
        Some((_, p)) => (p.to_owned(), 1),
        None => (
            argv.get(at + 1).context("--scenario needs a file")?.clone(),
            2,
        ),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parse {path}"))?;
    let mut from_file = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
        let values = match value {
            toml::Value::Array(items) => items,
            one => vec![one],
        };
        for v in values {
            match v {
                toml::Value::Boolean(true) => from_file.push(flag.clone()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => from_file.extend([flag.clone(), s]),
                toml::Value::Integer(i) => from_file.extend([flag.clone(), i.to_string()]),
                toml::Value::Float(f) => from_file.extend([flag.clone(), f.to_string()]),
                other => anyhow::bail!("{path}: {key} = {other}: not a flag value"),
            }
        }
    }
    // Flags given on the command line replace the file's.
    let given: Vec<&str> = argv
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a))
        .collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < from_file.len() {
        let flag = &from_file[i];
        let takes_value = from_file
            .get(i + 1)
            .is_some_and(|next| !next.starts_with("--"));
        let n = if takes_value { 2 } else { 1 };
        if !given.contains(&flag.as_str()) {
            kept.extend_from_slice(&from_file[i..i + n]);
        }
        i += n;
    }
    let mut out: Vec<String> = argv[..at].to_vec();
    out.extend(kept);
    out.extend_from_slice(&argv[at + consumed..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_follows_the_weights() {
        let mix: Mix = "sse=50,ws=40,poll=10".parse().unwrap();
        let mut counts = [0; 3];
        for i in 0..1000 {
            counts[mix.pick(i) as usize] += 1;
        }
        assert_eq!(counts, [500, 400, 100]);
        assert!("sse=0".parse::<Mix>().is_err());
        assert!("smoke=1".parse::<Mix>().is_err());
    }

    #[test]
    fn ranges_and_commands_parse() {
        let r: DelayRange = "100ms..2s".parse().unwrap();
        assert_eq!(
            (r.min, r.max),
            (Duration::from_millis(100), Duration::from_secs(2))
        );
        assert!("2s..1s".parse::<DelayRange>().is_err());
        let c: TimedCommand = "20s=kill -9 $(cat a=b.pid)".parse().unwrap();
        assert_eq!(c.at, Duration::from_secs(20));
        assert_eq!(c.command, "kill -9 $(cat a=b.pid)");
    }

    #[test]
    fn regions_parse() {
        let r: RegionSpec =
            "eu=http://127.0.1.2:18081,http://127.0.1.2:18082/@http://127.0.1.3:18081"
                .parse()
                .unwrap();
        assert_eq!(r.name, "eu");
        assert_eq!(r.apis, ["http://127.0.1.2:18081", "http://127.0.1.2:18082"]);
        assert_eq!(r.edges, ["http://127.0.1.3:18081"]);
        assert!("eu=http://a".parse::<RegionSpec>().is_err(), "no edge");
        assert!("EU=http://a@http://b".parse::<RegionSpec>().is_err());
        assert!("eu=@http://b".parse::<RegionSpec>().is_err());
        assert!("eu=ftp://a@http://b".parse::<RegionSpec>().is_err());
    }

    #[test]
    fn a_scenario_file_expands_to_flags_the_command_line_overrides() {
        let dir = std::env::temp_dir().join(format!("oc-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.toml");
        std::fs::write(
            &file,
            "rate = 200\nedge = [\"http://a\", \"http://b\"]\nquiet = true\nstep_delay = \"1s..2s\"\n",
        )
        .unwrap();
        let argv = [
            "lt",
            "run",
            "--scenario",
            file.to_str().unwrap(),
            "--rate",
            "5",
        ]
        .map(String::from)
        .to_vec();
        let out = expand_scenario_file(argv).unwrap();
        assert_eq!(
            out,
            [
                "lt",
                "run",
                "--edge",
                "http://a",
                "--edge",
                "http://b",
                "--quiet",
                "--step-delay",
                "1s..2s",
                "--rate",
                "5"
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
