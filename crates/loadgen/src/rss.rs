//! Peak resident memory of the servers: `VmHWM` of `/proc/<pid>/status`, the high-water mark
//! of the process's resident set since it started.

/// `VmHWM` in KiB from the text of a `/proc/<pid>/status` file.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmHWM:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resets each process's peak RSS to its current RSS (`5` into `/proc/<pid>/clear_refs`,
/// Linux 4.0+; needs the right to write there, e.g. the same user or root), so the next
/// reading is the peak of what happened since. Returns whether every reset worked.
pub fn reset_peaks(pids: &[u32]) -> bool {
    pids.iter().all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
}

/// Peak RSS in MiB of each process, `None` for one that cannot be read (exited, no /proc).
pub fn peak_rss_mib(pids: &[u32]) -> Vec<(u32, Option<f64>)> {
    pids.iter()
        .map(|&pid| {
            let mib = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .as_deref()
                .and_then(vm_hwm_kib)
                .map(|kib| kib as f64 / 1024.0);
            (pid, mib)
        })
        .collect()
}

/// The largest of the readable peaks.
pub fn max_mib(peaks: &[(u32, Option<f64>)]) -> Option<f64> {
    peaks.iter().filter_map(|(_, mib)| *mib).reduce(f64::max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tinventory-servi\nVmPeak:\t  812345 kB\nVmSize:\t  812000 kB\n\
VmHWM:\t   23552 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";

    #[test]
    fn reads_the_high_water_mark() {
        assert_eq!(vm_hwm_kib(STATUS), Some(23_552));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        assert_eq!(vm_hwm_kib("VmHWM:\tgarbage kB\n"), None);
    }

    #[test]
    fn resetting_a_missing_process_fails() {
        assert!(!reset_peaks(&[u32::MAX]));
        assert!(reset_peaks(&[]));
    }

    #[test]
    fn own_process_has_a_peak() {
        let peaks = peak_rss_mib(&[std::process::id(), u32::MAX]);
        assert!(peaks[0].1.unwrap() > 0.0);
        assert_eq!(peaks[1].1, None);
        assert_eq!(max_mib(&peaks), peaks[0].1);
        assert_eq!(max_mib(&[(1, Some(2.0)), (2, Some(5.5)), (3, None)]), Some(5.5));
        assert_eq!(max_mib(&[]), None);
    }
}
