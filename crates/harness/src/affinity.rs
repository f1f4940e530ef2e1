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
    fn pinning_reads_back_the_one_core() {
        let handle = std::thread::spawn(|| super::pin_current_thread(0));
        assert_eq!(handle.join().unwrap(), Ok(vec![0]));
    }
}
