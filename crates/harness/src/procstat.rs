//! What a process and the kernel hold in memory, read from `/proc`, and a least-squares fit.
//!
//! `conn-cost` samples these at each connection count and fits bytes per connection:
//! - [`vm_rss_bytes`]: a process's resident set (`VmRSS` in `/proc/<pid>/status`);
//! - [`sockstat`]: `/proc/net/sockstat`, machine-wide: sockets in use and the pages TCP holds
//!   for socket buffers;
//! - [`slab_bytes`]: `Slab` in `/proc/meminfo`, machine-wide: the kernel objects behind every
//!   socket (socket, inode, file, dentry, epoll item), which sockstat does not count.
//!
//! [`ProcessUsage`] is the whole-process counterpart of [`crate::rusage::Snapshot`], for
//! servers that run several event-loop threads.

use nix::sys::resource::{UsageWho, getrusage};

use ipcbench_record::Rusage;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// Parses the `VmRSS:  1234 kB` line of a `/proc/<pid>/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    kib_field(status, "VmRSS:")
}

/// Parses a `Name:  1234 kB` line, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The resident set of process `pid`, bytes.
///
/// # Errors
/// When the status file cannot be read or has no `VmRSS` line (the process is gone).
pub fn vm_rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    parse_vm_rss(&read(&path)?).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// The kernel's slab memory, machine-wide, bytes.
///
/// # Errors
/// When `/proc/meminfo` cannot be read or lacks the field.
pub fn slab_bytes() -> Result<u64, String> {
    kib_field(&read("/proc/meminfo")?, "Slab:").ok_or_else(|| "/proc/meminfo has no Slab line".into())
}

/// The figures of `/proc/net/sockstat` that conn-cost uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sockstat {
    /// `sockets: used`: every socket of every family on the machine.
    pub sockets_used: u64,
    /// `TCP: inuse`: TCP sockets in use.
    pub tcp_inuse: u64,
    /// `TCP: mem`: pages held by TCP socket buffers.
    pub tcp_mem_pages: u64,
}

/// Parses the text of `/proc/net/sockstat`.
pub fn parse_sockstat(text: &str) -> Option<Sockstat> {
    let field = |prefix: &str, name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(prefix))?;
        let mut words = line[prefix.len()..].split_whitespace();
        while let Some(word) = words.next() {
            let value = words.next()?;
            if word == name {
                return value.parse().ok();
            }
        }
        None
    };
    Some(Sockstat {
        sockets_used: field("sockets:", "used")?,
        tcp_inuse: field("TCP:", "inuse")?,
        tcp_mem_pages: field("TCP:", "mem")?,
    })
}

/// Reads `/proc/net/sockstat` (of this process's network namespace).
///
/// # Errors
/// When it cannot be read or parsed.
pub fn sockstat() -> Result<Sockstat, String> {
    parse_sockstat(&read("/proc/net/sockstat")?).ok_or_else(|| "cannot parse /proc/net/sockstat".into())
}

/// The size of a memory page, bytes.
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// A snapshot of the whole process's resource use (every thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessUsage(Rusage);

fn timeval_ns(tv: nix::sys::time::TimeVal) -> u64 {
    (tv.tv_sec() as u64) * 1_000_000_000 + (tv.tv_usec() as u64) * 1_000
}

impl ProcessUsage {
    /// Reads the process's counters now.
    pub fn now() -> ProcessUsage {
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(u) => ProcessUsage(Rusage {
                user_ns: timeval_ns(u.user_time()),
                system_ns: timeval_ns(u.system_time()),
                voluntary_csw: u.voluntary_context_switches() as u64,
                involuntary_csw: u.involuntary_context_switches() as u64,
                // ru_maxrss is in KiB on Linux.
                max_rss_bytes: u.max_rss() as u64 * 1024,
            }),
            Err(_) => ProcessUsage::default(),
        }
    }

    /// What was used between `self` (earlier) and `later`.
    pub fn until(&self, later: &ProcessUsage) -> Rusage {
        Rusage {
            user_ns: later.0.user_ns.saturating_sub(self.0.user_ns),
            system_ns: later.0.system_ns.saturating_sub(self.0.system_ns),
            voluntary_csw: later.0.voluntary_csw.saturating_sub(self.0.voluntary_csw),
            involuntary_csw: later.0.involuntary_csw.saturating_sub(self.0.involuntary_csw),
            max_rss_bytes: later.0.max_rss_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tipcbench\nVmPeak:\t  99999 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name:\tzombie\n"), None);
    }

    #[test]
    fn sockstat_fields_are_found_by_name() {
        let text = "sockets: used 2018\nTCP: inuse 1003 orphan 0 tw 10 alloc 1005 mem 62\nUDP: inuse 0 mem 0\n";
        assert_eq!(
            parse_sockstat(text),
            Some(Sockstat {
                sockets_used: 2018,
                tcp_inuse: 1003,
                tcp_mem_pages: 62,
            })
        );
        assert_eq!(parse_sockstat("sockets: used 5\n"), None);
    }

    #[test]
    fn this_machine_has_the_proc_files() {
        assert!(vm_rss_bytes(std::process::id()).unwrap() > 0);
        assert!(slab_bytes().unwrap() > 0);
        assert!(sockstat().is_ok());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn process_usage_counts_every_thread() {
        let start = ProcessUsage::now();
        std::thread::spawn(|| {
            let begun = std::time::Instant::now();
            let mut x = 0u64;
            while begun.elapsed() < std::time::Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .join()
        .unwrap();
        assert!(start.until(&ProcessUsage::now()).cpu_ns() > 0);
    }
}
