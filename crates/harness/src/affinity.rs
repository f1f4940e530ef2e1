//! Pinning the calling thread to one core and reading the affinity back.

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// Pins the calling thread to `core` and returns the affinity read back afterwards.
///
/// # Errors
/// A message naming the core when the kernel refuses (no such core, not allowed here).
pub fn pin_current_thread(core: usize) -> Result<Vec<usize>, String> {
    if core >= CpuSet::MAX_CPU {
        return Err(format!(
            "core {core} is beyond the largest core number {}",
            CpuSet::MAX_CPU - 1
        ));
    }
    let mut set = CpuSet::new();
    set.set(core);
    sched_setaffinity(None, &set).map_err(|e| format!("cannot pin to core {core}: {e}"))?;
    Ok(current_affinity())
}

/// Pins another process (all of whose threads were started from one, as nginx's are) to `core`.
///
/// # Errors
/// A message naming the process and core when the kernel refuses.
pub fn pin_process(pid: u32, core: usize) -> Result<(), String> {
    let target = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| format!("bad process id {pid}"))?;
    let mut set = CpuSet::new();
    set.set(core);
    sched_setaffinity(Some(target), &set).map_err(|e| format!("cannot pin process {pid} to core {core}: {e}"))
}

/// Pins the calling thread to every core in `cores` (restores a saved affinity).
///
/// # Errors
/// A message when the kernel refuses.
pub fn set_affinity(cores: &[usize]) -> Result<(), String> {
    let mut set = CpuSet::new();
    for &core in cores.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
        set.set(core);
    }
    sched_setaffinity(None, &set).map_err(|e| format!("cannot restore the affinity {cores:?}: {e}"))
}

/// The machine's online cores, whatever the calling thread's affinity (which pinning narrows).
pub fn online_cores() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| parse_cpu_list(text.trim()))
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Counts the cores in a kernel CPU list such as `0-3,6,8-9`.
fn parse_cpu_list(text: &str) -> Option<usize> {
    text.split(',').try_fold(0, |count, part| match part.split_once('-') {
        Some((a, b)) => Some(count + b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1),
        None => part.parse::<usize>().ok().map(|_| count + 1),
    })
}

/// The cores the calling thread may run on.
pub fn current_affinity() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists_count_their_cores() {
        assert_eq!(super::parse_cpu_list("0-1"), Some(2));
        assert_eq!(super::parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(super::parse_cpu_list("0"), Some(1));
        assert_eq!(super::parse_cpu_list("x"), None);
    }

    #[test]
    fn online_cores_ignore_the_threads_pinning() {
        let before = super::online_cores();
        let after = std::thread::spawn(|| {
            super::pin_current_thread(0).unwrap();
            super::online_cores()
        });
        assert_eq!(after.join().unwrap(), before);
    }

    #[test]
    fn pinning_reads_back_the_one_core() {
        let handle = std::thread::spawn(|| super::pin_current_thread(0));
        assert_eq!(handle.join().unwrap(), Ok(vec![0]));
    }
}
