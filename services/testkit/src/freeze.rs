//! Freezing a server's processes (SIGSTOP) and thawing them (SIGCONT): a
//! dependency that hangs instead of refusing, as a stopped VM, a long GC
//! pause or a black-holed network would.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

/// Processes stopped with SIGSTOP; continued (SIGCONT) on drop, so a test
/// that fails while a server is frozen leaves nothing stopped.
pub(crate) struct Frozen {
    pids: BTreeSet<u32>,
}

impl Frozen {
    /// Stops `pid` and every process whose parent it is (PostgreSQL's
    /// backends and workers), the parent first so it forks no more; again
    /// until a pass finds no child left running.
    pub(crate) fn process_tree(pid: u32) -> Frozen {
        let mut frozen = Frozen {
            pids: BTreeSet::new(),
        };
        frozen.stop(pid);
        loop {
            let running: Vec<u32> = children(pid)
                .into_iter()
                .filter(|child| !frozen.pids.contains(child))
                .collect();
            if running.is_empty() {
                return frozen;
            }
            running.into_iter().for_each(|child| frozen.stop(child));
        }
    }

    fn stop(&mut self, pid: u32) {
        signal(pid, "-STOP");
        self.pids.insert(pid);
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.pids {
            signal(pid, "-CONT");
        }
    }
}

/// Sends `signal` to `pid` (one process, by its id); a process that has
/// exited meanwhile is not an error.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// The processes whose parent is `parent` (from /proc).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// The parent of `pid`: the field after the state in /proc/<pid>/stat,
/// whose command name (in parentheses) may itself hold spaces.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}
