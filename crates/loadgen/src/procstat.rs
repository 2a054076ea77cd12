//! CPU time of other processes (the servers, PostgreSQL's backends) from `/proc/<pid>/stat`,
//! so each result can say where the machine's two cores went.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_S: u64 = 100;

/// Fields of `/proc/<pid>/stat` this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// User + system time.
    pub cpu: Duration,
}

/// Parses a `/proc/<pid>/stat` line. The command name is in parentheses and may hold spaces
/// or parentheses itself, so fields are counted after the last `)`.
pub fn parse(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(ProcStat { ppid, cpu: Duration::from_millis(ticks * 1000 / TICKS_PER_S) })
}

/// CPU time of process `pid` so far (None when it is gone).
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(&text).map(|s| s.cpu)
}

/// CPU time so far of `parent` and every live child of it (a postmaster and its backends).
pub fn cpu_of_tree(parent: u32) -> Duration {
    let mut total = cpu_of(parent).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return total;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(stat) = parse(&text).filter(|s| s.ppid == parent) {
            total += stat.cpu;
        }
    }
    total
}

/// The parent of `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(&text).map(|s| s.ppid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "4242 (postgres: a (b) c) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 130 0 0 20 0 1 0 5 1 1";
        let stat = parse(line).unwrap();
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.cpu, Duration::from_millis(3_800));
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("1 (x) S 0 1"), None);
    }

    #[test]
    fn reads_its_own_process() {
        let me = std::process::id();
        assert!(cpu_of(me).is_some());
        assert!(parent_of(me).is_some());
        assert_eq!(cpu_of(u32::MAX), None);
        // A tree rooted at a process with no children is that process; read the process
        // first, since its CPU time only grows between the two reads.
        let own = cpu_of(me).unwrap();
        assert!(cpu_of_tree(me) >= own);
    }
}
