//! CPU time and memory of server processes on this machine, from /proc.

use std::path::PathBuf;

use serde::Serialize;

/// A process to watch: a pid, or a file holding one (re-read at every
/// sample, for processes restarted mid-run).
#[derive(Clone, Debug)]
pub enum Target {
    Pid(u32),
    File(PathBuf),
}

impl Target {
    pub fn name(&self) -> String {
        match self {
            Target::Pid(p) => format!("pid {p}"),
            Target::File(f) => f.display().to_string(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Target::Pid(p) => Some(*p),
            Target::File(f) => std::fs::read_to_string(f).ok()?.trim().parse().ok(),
        }
    }
}

/// One reading.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Sample {
    pub pid: u32,
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    pub rss_kib: u64,
}

/// Reads a process's CPU time and resident memory, if it is alive.
pub fn sample(target: &Target) -> Option<Sample> {
    let pid = target.pid()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
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
    /// CPU seconds used during the run (summed over restarts).
    pub cpu_s: f64,
    /// Times the pid changed (restarts seen).
    pub restarts: u32,
    #[serde(skip)]
    last: Option<Sample>,
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
}
