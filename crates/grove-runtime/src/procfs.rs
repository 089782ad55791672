//! The host's process tree as seen in `/proc`, and signals by PID.
//!
//! Processes are only ever found by walking down from a PID we spawned ourselves,
//! never by name.

use std::collections::BTreeMap;

/// One line of `/proc/<pid>/stat`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub ppid: u32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    /// Start time in clock ticks since boot: with the pid, identifies a process
    /// across pid reuse.
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is field 4, starttime field 22.
    Some(ProcStat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat` of one process, if it exists.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process currently on the host (those that vanish while we read are
/// skipped).
pub fn all_processes() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: u32 = name.to_str()?.parse().ok()?;
        stat(pid)
    })
    .collect()
}

/// All descendants of `pid` (not `pid` itself), parents before children.
pub fn descendants(pid: u32) -> Vec<u32> {
    descendants_in(&all_processes(), pid)
}

pub fn descendants_in(processes: &[ProcStat], pid: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in processes {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([pid]);
    while let Some(parent) = queue.pop_front() {
        for &child in children.get(&parent).into_iter().flatten() {
            // pid 0 is the kernel's idle task and the parent of init and kthreadd.
            if child != pid && child != 0 && !out.contains(&child) {
                out.push(child);
                queue.push_back(child);
            }
        }
    }
    out
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Whether the process `p` describes is still there: same pid, same start time
/// (not a reused pid), and not a zombie.
pub fn is_still_alive(p: &ProcStat) -> bool {
    stat(p.pid).is_some_and(|s| s.start_time == p.start_time && s.state != 'Z' && s.state != 'X')
}

/// Signals that Grove sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Sends `signal` to the process `pid`. A process that is already gone is not
/// an error.
pub fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let Some(target) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid pid {pid}"),
        ));
    };
    let sig = match signal {
        Signal::Term => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
    };
    match rustix::process::kill_process(target, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_and_spaces_in_the_name() {
        let text = "4242 (we ird) (name)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                pid: 4242,
                ppid: 17,
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_walks_the_whole_subtree_only() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            state: 'S',
            start_time: 0,
        };
        let procs = [
            p(1, 0),
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 11),
            p(20, 1),
            p(21, 20),
        ];
        assert_eq!(descendants_in(&procs, 10), vec![11, 12, 13]);
        assert_eq!(descendants_in(&procs, 12), Vec::<u32>::new());
    }

    #[test]
    fn our_own_process_is_alive() {
        assert!(is_alive(std::process::id()));
    }
}
