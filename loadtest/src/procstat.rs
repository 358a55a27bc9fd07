//! CPU time and memory of server processes on this machine, from /proc.

use std::path::PathBuf;

use serde::Serialize;

/// A process to watch: a pid, or a file holding one (re-read at every
/// sample, for processes restarted mid-run), or a process with every
/// process it started (PostgreSQL's postmaster and its backends).
#[derive(Clone, Debug)]
pub enum Target {
    Pid(u32),
    File(PathBuf),
    Tree(u32),
}

impl Target {
    pub fn name(&self) -> String {
        match self {
            Target::Pid(p) => format!("pid {p}"),
            Target::File(f) => f.display().to_string(),
            Target::Tree(p) => format!("pid {p} and its children"),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Target::Pid(p) | Target::Tree(p) => Some(*p),
            Target::File(f) => std::fs::read_to_string(f).ok()?.trim().parse().ok(),
        }
    }
}

/// `/proc/<pid>/stat`'s fields after the command name (which is in
/// parentheses and may hold spaces): field N of the line is index N - 3.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // The state (a letter) is not a number; keep the positions.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// User + system CPU ticks of `pid`; with `children`, also of the children
/// it has reaped (PostgreSQL's backends that ended).
fn ticks(pid: u32, children: bool) -> Option<u64> {
    let f = stat_fields(pid)?;
    // utime, stime, cutime, cstime are fields 14 to 17.
    let own = f.get(11)? + f.get(12)?;
    Some(if children {
        own + f.get(13)? + f.get(14)?
    } else {
        own
    })
}

/// Every living process descended from `root`.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, *stat_fields(pid)?.get(1)? as u32)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// One reading.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    pub pid: u32,
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    pub rss_kib: u64,
}

/// Reads a process's CPU time and resident memory, if it is alive. For a
/// tree, the CPU time is the whole tree's (living and ended children) and
/// the memory the root's.
pub fn sample(target: &Target) -> Option<Sample> {
    let pid = target.pid()?;
    let ticks = match target {
        Target::Tree(_) => {
            let children = descendants(pid).into_iter().filter_map(|c| ticks(c, true));
            ticks(pid, true)? + children.sum::<u64>()
        }
        _ => ticks(pid, false)?,
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some(Sample {
        pid,
        // USER_HZ is 100 on Linux.
        cpu_s: ticks as f64 / 100.0,
        rss_kib,
    })
}

/// What one process did over the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    pub name: String,
    /// RSS before any screen connected.
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: u64,
    /// RSS when every screen was connected, before traffic.
    pub rss_connected_kib: Option<u64>,
    /// RSS `--linger` after every screen closed.
    pub rss_after_kib: Option<u64>,
    /// CPU seconds used during the run (summed over restarts).
    pub cpu_s: f64,
    /// CPU seconds used while measuring (after the warm-up, until traffic
    /// stopped).
    pub cpu_measured_s: Option<f64>,
    /// `cpu_measured_s` per event read by a screen meanwhile, µs.
    pub cpu_us_per_delivery: Option<f64>,
    /// Times the pid changed (restarts seen).
    pub restarts: u32,
    #[serde(skip)]
    last: Option<Sample>,
    #[serde(skip)]
    cpu_at_measure: Option<f64>,
}

impl Usage {
    pub fn new(target: &Target) -> Usage {
        Usage {
            name: target.name(),
            ..Usage::default()
        }
    }

    pub fn observe(&mut self, s: Sample) {
        self.rss_peak_kib = self.rss_peak_kib.max(s.rss_kib);
        match self.last {
            Some(prev) if prev.pid == s.pid => self.cpu_s += (s.cpu_s - prev.cpu_s).max(0.0),
            Some(_) => {
                self.restarts += 1;
                self.cpu_s += s.cpu_s;
            }
            None => {}
        }
        self.last = Some(s);
    }

    /// Measuring starts now.
    pub fn start_measuring(&mut self) {
        self.cpu_at_measure = Some(self.cpu_s);
    }

    /// Measuring ends now, with `deliveries` events read meanwhile.
    pub fn stop_measuring(&mut self, deliveries: u64) {
        if let Some(start) = self.cpu_at_measure {
            let used = self.cpu_s - start;
            self.cpu_measured_s = Some(used);
            self.cpu_us_per_delivery = (deliveries > 0).then(|| used * 1e6 / deliveries as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(&Target::Pid(std::process::id())).expect("this process is alive");
        assert!(s.rss_kib > 0);
        let mut u = Usage::new(&Target::Pid(s.pid));
        u.observe(s);
        u.observe(Sample {
            cpu_s: s.cpu_s + 1.5,
            ..s
        });
        u.observe(Sample {
            pid: s.pid + 1,
            cpu_s: 0.25,
            rss_kib: 1,
        });
        assert_eq!((u.cpu_s, u.restarts), (1.75, 1));
        assert!(sample(&Target::File("/nonexistent/pid".into())).is_none());
    }

    #[test]
    fn a_tree_counts_the_cpu_of_its_children() {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (mut own, mut tree) = (0.0, 0.0);
        // The child burns CPU, then sleeps: wait until its work shows.
        while std::time::Instant::now() < deadline {
            own = sample(&Target::Pid(me)).unwrap().cpu_s;
            tree = sample(&Target::Tree(me)).unwrap().cpu_s;
            if tree >= own + 0.05 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            tree >= own + 0.05,
            "the child's CPU: tree {tree}, own {own}"
        );
    }
}
