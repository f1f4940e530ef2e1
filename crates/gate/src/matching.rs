//! Which cases of two runs are the same case, and whether two machines are comparable.

use std::collections::BTreeMap;

use ipcbench_record::{CaseId, Environment, RunRecord};

/// The key runs are matched by: the case id without an injected `delay=<n>ns` option, so
/// `pingpong/null[delay=300ns]/64B/c0` matches `pingpong/null/64B/c0`.
pub fn match_key(id: &str) -> String {
    match id.parse::<CaseId>() {
        Ok(parsed) => parsed.without_injected_delay().to_string(),
        Err(_) => id.to_owned(),
    }
}

/// How two machine manifests differ in what makes figures comparable: CPU model, core count,
/// kernel. Empty when they match.
pub fn machine_differences(old: &Environment, new: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    if old.cpu_model != new.cpu_model {
        out.push(format!("CPU `{}` vs `{}`", old.cpu_model, new.cpu_model));
    }
    if old.cores != new.cores {
        out.push(format!("{} vs {} cores", old.cores, new.cores));
    }
    if old.kernel != new.kernel {
        out.push(format!("kernel {} vs {}", old.kernel, new.kernel));
    }
    out
}

/// How the machines of two runs differ: this machine's ([`machine_differences`]) and each
/// agent's, paired by role and position (a run with agents against one without differs too).
/// Empty when every machine matches.
pub fn run_machine_differences(old: &RunRecord, new: &RunRecord) -> Vec<String> {
    let mut out = machine_differences(&old.environment, &new.environment);
    fn sorted(run: &RunRecord) -> Vec<&ipcbench_record::AgentRecord> {
        let mut agents: Vec<_> = run.agents.iter().collect();
        agents.sort_by(|a, b| (&a.role, &a.address).cmp(&(&b.role, &b.address)));
        agents
    }
    let (old_agents, new_agents) = (sorted(old), sorted(new));
    if old_agents.len() != new_agents.len() {
        out.push(format!("{} vs {} agent machines", old_agents.len(), new_agents.len()));
        return out;
    }
    for (a, b) in old_agents.iter().zip(&new_agents) {
        if a.role != b.role {
            out.push(format!("agent roles {} vs {}", a.role, b.role));
            continue;
        }
        out.extend(
            machine_differences(&a.environment, &b.environment)
                .into_iter()
                .map(|d| format!("agent {} vs {}: {d}", a.address, b.address)),
        );
    }
    out
}

/// The match key of every case of `run`: [`match_key`], or the full id where two cases of the
/// run share a match key (a plan that sweeps `delay_ns` itself).
pub(crate) fn keys(run: &RunRecord) -> Vec<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for case in &run.cases {
        *counts.entry(match_key(&case.id)).or_default() += 1;
    }
    run.cases
        .iter()
        .map(|case| {
            let key = match_key(&case.id);
            if counts[&key] > 1 { case.id.clone() } else { key }
        })
        .collect()
}
