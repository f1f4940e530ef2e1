//! The provenance line printed on every chart and at the top of every report.

use ipcbench_record::RunRecord;

/// Where a chart's numbers come from: run name, machine, kernel and date.
///
/// Every field is plain text taken from the record itself (never the time of rendering), so
/// rendering an old `run.json` again gives the same charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The run's name (or `old vs new` for a comparison).
    pub run: String,
    /// CPU model, logical core count and virtualization, e.g. `Intel Xeon, 2 cores, kvm`.
    pub machine: String,
    /// Kernel release and OS, e.g. `Linux 6.8.0 (linux x86_64)`.
    pub kernel: String,
    /// When the run started (RFC 3339, UTC), from the record.
    pub date: String,
    /// The ipcbench version and git commit that measured the run.
    pub software: String,
}

impl Stamp {
    /// The stamp of one run.
    pub fn from_record(record: &RunRecord) -> Stamp {
        let env = &record.environment;
        let virtualization = match &env.virtualization {
            Some(v) => v.clone(),
            None => "no virtualization detected".to_owned(),
        };
        let software = match &env.git_commit {
            Some(commit) => format!("ipcbench {} ({commit})", env.ipcbench_version),
            None => format!("ipcbench {}", env.ipcbench_version),
        };
        let mut machine = format!("{}, {} cores, {virtualization}", env.cpu_model, env.cores);
        // A run across machines names the agents' too (absent from one-machine records, whose
        // charts stay byte-identical).
        for agent in &record.agents {
            machine.push_str(&format!(
                "; agent {}: {}, {} cores",
                agent.address, agent.environment.cpu_model, agent.environment.cores
            ));
        }
        Stamp {
            run: record.name.clone(),
            machine,
            kernel: format!("kernel {} ({})", env.kernel, env.os),
            date: record.started_at.clone(),
            software,
        }
    }

    /// The stamp of a comparison: both runs' names and dates; the machine and kernel of the
    /// new run, with the old run's added when they differ.
    pub fn comparison(old: &RunRecord, new: &RunRecord) -> Stamp {
        let (old_stamp, new_stamp) = (Stamp::from_record(old), Stamp::from_record(new));
        let both = |old: &str, new: &str| {
            if old == new {
                new.to_owned()
            } else {
                format!("{new} (old run: {old})")
            }
        };
        Stamp {
            run: format!("{} vs {}", old_stamp.run, new_stamp.run),
            machine: both(&old_stamp.machine, &new_stamp.machine),
            kernel: both(&old_stamp.kernel, &new_stamp.kernel),
            date: format!("{} vs {}", old_stamp.date, new_stamp.date),
            software: both(&old_stamp.software, &new_stamp.software),
        }
    }

    /// The stamp as one line: `run smoke · 2026-01-01T00:00:00Z · <machine> · <kernel> · <software>`.
    pub fn line(&self) -> String {
        format!(
            "run {} · {} · {} · {} · {}",
            self.run, self.date, self.machine, self.kernel, self.software
        )
    }
}
