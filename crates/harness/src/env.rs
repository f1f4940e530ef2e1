//! The environment manifest: what machine and software a run happened on, and the conditions
//! that make its numbers less reliable.

use std::fs;

use ipcbench_record::Environment;

/// Facts the binary knows about itself (filled in by the CLI's build script).
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    /// `rustc --version` of the compiler that built the binary.
    pub rustc_version: String,
    /// The package version.
    pub ipcbench_version: String,
    /// The git commit, when built from a checkout.
    pub git_commit: Option<String>,
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Names the hypervisor and container layers found, e.g. `kvm+container`.
fn detect_virtualization(cpuinfo: &str) -> Option<String> {
    let clocksources =
        read_trimmed("/sys/devices/system/clocksource/clocksource0/available_clocksource").unwrap_or_default();
    let vendor = read_trimmed("/sys/class/dmi/id/sys_vendor")
        .unwrap_or_default()
        .to_lowercase();
    let hypervisor_flag = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    let hypervisor = if clocksources.contains("kvm-clock") || vendor.contains("qemu") || vendor.contains("kvm") {
        Some("kvm")
    } else if clocksources.contains("hyperv") || vendor.contains("microsoft") {
        Some("hyperv")
    } else if clocksources.contains("xen") || vendor.contains("xen") {
        Some("xen")
    } else if vendor.contains("vmware") {
        Some("vmware")
    } else if hypervisor_flag {
        Some("vm")
    } else {
        None
    };
    let container = ["/.dockerenv", "/run/.containerenv"]
        .iter()
        .any(|p| fs::metadata(p).is_ok())
        .then_some("container");
    let layers: Vec<&str> = hypervisor.into_iter().chain(container).collect();
    (!layers.is_empty()).then(|| layers.join("+"))
}

/// Reads the manifest from `/proc`, `/sys` and `uname`.
pub fn collect(build: &BuildInfo) -> Environment {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let uname = rustix::system::uname();
    let memory_bytes = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|kib| kib * 1024)
        .unwrap_or(0);
    let open_files_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(0);
    Environment {
        hostname: uname.nodename().to_string_lossy().into_owned(),
        cpu_model,
        cores: crate::affinity::online_cores(),
        kernel: uname.release().to_string_lossy().into_owned(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        virtualization: detect_virtualization(&cpuinfo),
        clock_source: read_trimmed("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        load_average_1m: read_trimmed("/proc/loadavg")
            .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0),
        memory_bytes,
        open_files_limit,
        rustc_version: build.rustc_version.clone(),
        ipcbench_version: build.ipcbench_version.clone(),
        git_commit: build.git_commit.clone(),
    }
}

/// Conditions that make numbers from this machine less reliable.
pub fn warnings(environment: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    let per_core = environment.load_average_1m / environment.cores.max(1) as f64;
    if per_core > 0.5 {
        out.push(format!(
            "load average {:.2} is above 0.5 per core ({} cores): other work is competing for the CPUs",
            environment.load_average_1m, environment.cores
        ));
    }
    if let Some(virt) = &environment.virtualization {
        out.push(format!(
            "running under virtualization ({virt}): cross-core wake-ups and timer behaviour differ from bare metal"
        ));
    }
    if let Some(governor) = &environment.governor
        && governor != "performance"
    {
        out.push(format!(
            "CPU frequency governor is `{governor}`, not `performance`: clock speed may vary during the run"
        ));
    }
    out
}
