//! Several server and generator processes for one `load` or `conn-cost` case.
//!
//! One process can hold only as many connections as its open-file limit (a hard limit of
//! 20,000 here, which only `CAP_SYS_RESOURCE` may raise), and one destination address only as
//! many as the ephemeral port range (about 28,000). So a case's connections are spread:
//!
//! - over `client_processes` generator processes (`scenario/generator.rs`) and `server_processes`
//!   server processes (`scenario/echo_server.rs`), by default as few of each as the limit allows,
//!   every generator pinned to the client core and every server to the server core;
//! - over `server_addresses` listening addresses per server (127.0.0.1, 127.0.0.2, ... for
//!   more than one), each its own destination with its own ephemeral range;
//! - over `source_addresses` client source addresses (from `source_address_base`, default
//!   127.1.0.1), so a simulated client can have an address of its own.
//!
//! [`layout`] checks all of this before anything starts and refuses a case that cannot fit
//! (descriptors, ports, threads, memory) with the numbers needed and available. `Processes`
//! starts them, ramps the connections up in batches (each at most half the accept backlog,
//! the next only once the servers accepted everything so far), runs phases on every
//! generator at once, and merges what they send back.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipcbench_core::{Channel, Transport};
use ipcbench_record::Rusage;
use ipcbench_record::stats;
use nix::sys::resource::{Resource, getrlimit};

use crate::plan::{Case, FleetOptions, ServerModel, TransportKind};
use crate::protocol::{self, PeerReport};
use crate::rusage;
use crate::scenario::fleet::{
    self, BATCH_TIMEOUT, COUNTERS, PeerRole, Stall, Started, batch_size, expect_control, parse_body, query_accepted,
};
use crate::scenario::generator::{OPEN, Open, Opened, PHASE, Phase, PhaseResult, RESULT, RESULT_BUF_BYTES};
use crate::session::{TrialContext, TrialError};
use crate::{fdlimit, procstat};

/// Descriptors a process keeps beyond its connections (and those it already has open).
const PROCESS_SPARE_FDS: u64 = 2 * fdlimit::SPARE_FDS;
/// Kernel memory per loopback connection, both ends (measured by `conn-cost`: 8.4 KB for tcp),
/// rounded up for the check against available memory.
const KERNEL_BYTES_PER_CONNECTION: u64 = 12 * 1024;
/// User memory per connection of a generator and an event-loop server (buffers, state).
const USER_BYTES_PER_CONNECTION: u64 = 2 * 1024;
/// What a connection thread of the thread-per-connection server touches (stack, buffer).
const THREAD_BYTES_PER_CONNECTION: u64 = 24 * 1024;
/// Part of the available memory a case may plan to use.
const MEMORY_SHARE: f64 = 0.8;
/// How often a phase looks at its processes while it waits for them.
const WATCH_TICK: Duration = Duration::from_millis(50);

/// How a case's connections are spread over processes and addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Connections per generator process.
    pub generators: Vec<u64>,
    /// Connections per server process.
    pub servers: Vec<u64>,
    /// The listening IPs of each server process (empty: the transport's own address).
    pub server_ips: Vec<Vec<IpAddr>>,
    /// The first source address and how many (none: the kernel's choice).
    pub sources: Option<(Ipv4Addr, u32)>,
    /// Connections per source address and destination, the figure the port range bounds.
    pub per_port_range: u64,
}

/// What the machine allows, as [`layout`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineLimits {
    /// The hard open-file limit per process.
    pub open_files: u64,
    /// Ports of the ephemeral range.
    pub ephemeral_ports: u64,
    /// Threads the kernel allows in all (`min(threads-max, pid_max)`), minus those running.
    pub threads: u64,
    /// Available memory, bytes.
    pub memory_bytes: u64,
}

impl MachineLimits {
    /// This machine's limits now.
    pub fn read() -> MachineLimits {
        let hard = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(_, hard)| hard);
        let read_u64 = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.split_whitespace().next().and_then(|w| w.parse::<u64>().ok()))
        };
        let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| {
                let mut words = t.split_whitespace().map(|w| w.parse::<u64>().ok());
                Some((words.next()??, words.next()??))
            })
            .map_or(28_232, |(low, high)| high.saturating_sub(low) + 1);
        let threads_max = read_u64("/proc/sys/kernel/threads-max").unwrap_or(32_768);
        let pid_max = read_u64("/proc/sys/kernel/pid_max").unwrap_or(32_768);
        let running = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| {
                t.split_whitespace()
                    .nth(3)
                    .and_then(|w| w.split('/').nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(1000);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(u64::MAX, |kib| kib * 1024);
        MachineLimits {
            open_files: hard,
            ephemeral_ports: ports,
            threads: threads_max.min(pid_max).saturating_sub(running),
            memory_bytes: memory,
        }
    }
}

pub use crate::plan::shares;

/// How `connections` of `case` are spread, or why they cannot fit `limits`.
///
/// # Errors
/// [`TrialError::Unsupported`] naming what is needed and what the machine has.
pub fn layout(case: &Case, connections: u64, limits: &MachineLimits) -> Result<Layout, TrialError> {
    let fleet = case.fleet.clone().unwrap_or_default();
    let refuse = |m: String| Err(TrialError::Unsupported(m));
    let is_tcp = case.transport.kind() == TransportKind::Tcp;
    if !is_tcp && (fleet.source_addresses > 0 || fleet.server_addresses > 1) {
        return refuse(format!(
            "`source_addresses` and `server_addresses` are IP addresses: {} has none (use tcp)",
            case.transport.kind()
        ));
    }
    let per_process = limits
        .open_files
        .saturating_sub(PROCESS_SPARE_FDS + fdlimit::open_now());
    if per_process == 0 {
        return refuse(format!(
            "the hard open-file limit RLIMIT_NOFILE (`ulimit -Hn`) is {}, which leaves no room for connections",
            limits.open_files
        ));
    }
    let needed = connections.div_ceil(per_process);
    let count = |asked: u32, role: &str| -> Result<u64, TrialError> {
        if asked == 0 {
            return Ok(needed.max(1));
        }
        let asked = u64::from(asked);
        if connections.div_ceil(asked) > per_process {
            return Err(TrialError::Unsupported(format!(
                "{connections} connections over {asked} {role} processes is {} per process, but the hard \
                 open-file limit RLIMIT_NOFILE (`ulimit -Hn`) is {}, which leaves {per_process} per process: set \
                 `{role}_processes` to at least {needed}, or leave it out to spread them as needed",
                connections.div_ceil(asked),
                limits.open_files
            )));
        }
        Ok(asked)
    };
    // Remote generators: one process on each agent, whose open-file limit is its own.
    let n_generators = match case.generators.len() as u64 {
        0 => count(fleet.client_processes, "client")?,
        agents => agents,
    };
    let n_servers = count(fleet.server_processes, "server")?;
    if let Some(peer) = case.peer {
        // An agent runs one server process per trial, and source addresses are this machine's.
        if n_servers > 1 || fleet.source_addresses > 0 || fleet.server_addresses > 1 {
            return refuse(format!(
                "with `peer` = {peer} the server is one process on the agent, reached at its own address: \
                 {connections} connections need {n_servers} server processes (at most 1 remotely), and \
                 `source_addresses` / `server_addresses` apply only to loopback runs"
            ));
        }
    }
    let addresses_per_server = u64::from(fleet.server_addresses.max(1));
    let destinations = n_servers * addresses_per_server;
    let sources = u64::from(fleet.source_addresses.max(1));
    let per_port_range = connections.div_ceil(destinations * sources);
    if per_port_range > limits.ephemeral_ports && is_tcp {
        let more = connections.div_ceil(limits.ephemeral_ports * sources);
        return refuse(format!(
            "{connections} connections to {destinations} destination addresses from {sources} source addresses \
             is {per_port_range} per (source, destination) pair, but the ephemeral port range has {} ports: \
             raise `server_addresses` or `server_processes` to at least {more} destinations in all, or \
             `source_addresses`",
            limits.ephemeral_ports
        ));
    }
    if fleet.server_model == ServerModel::ThreadPerConnection && connections + 64 > limits.threads {
        return refuse(format!(
            "the thread-per-connection server needs a thread for each of {connections} connections, but the \
             kernel allows {} more threads (min of kernel.threads-max and kernel.pid_max, less those running)",
            limits.threads
        ));
    }
    let per_connection = KERNEL_BYTES_PER_CONNECTION
        + USER_BYTES_PER_CONNECTION * 2
        + if fleet.server_model == ServerModel::ThreadPerConnection {
            THREAD_BYTES_PER_CONNECTION
        } else {
            0
        };
    let memory = connections.saturating_mul(per_connection);
    if memory as f64 > limits.memory_bytes as f64 * MEMORY_SHARE {
        return refuse(format!(
            "{connections} connections need about {} MiB ({} KiB each: kernel socket memory of both ends, \
             client and server state{}), but {} MiB are available and a case may plan {:.0}% of it",
            memory >> 20,
            per_connection / 1024,
            if fleet.server_model == ServerModel::ThreadPerConnection {
                ", a thread's stack"
            } else {
                ""
            },
            limits.memory_bytes >> 20,
            MEMORY_SHARE * 100.0
        ));
    }
    let server_ips = (0..n_servers)
        .map(|s| {
            if addresses_per_server <= 1 {
                Vec::new()
            } else {
                (0..addresses_per_server)
                    .map(|k| {
                        IpAddr::V4(Ipv4Addr::from(
                            u32::from(Ipv4Addr::LOCALHOST) + (s * addresses_per_server + k) as u32,
                        ))
                    })
                    .collect()
            }
        })
        .collect();
    Ok(Layout {
        generators: shares(connections, n_generators),
        servers: shares(connections, n_servers),
        server_ips,
        sources: (fleet.source_addresses > 0).then_some((fleet.source_address_base, fleet.source_addresses)),
        per_port_range,
    })
}

/// The servers and generators of one trial, started and connected.
pub(crate) struct Processes<C> {
    /// The server processes.
    pub servers: Vec<Started<C>>,
    /// The generator processes.
    pub generators: Vec<Started<C>>,
    /// The layout they were started with.
    pub layout: Layout,
    /// Connections each generator holds now.
    pub held: Vec<u64>,
    buf: Vec<u8>,
}

/// What one phase on every generator came to.
pub(crate) struct PhaseOutcome {
    /// Latency from the actual send, all generators merged.
    pub raw: hdrhistogram::Histogram<u64>,
    /// Latency from the intended send, all generators merged.
    pub corrected: hdrhistogram::Histogram<u64>,
    /// Each generator's result (its histograms already merged above).
    pub results: Vec<PhaseResult>,
    /// Each server's counters over the measured phase.
    pub servers: Vec<PeerReport>,
    /// The measured phase, s.
    pub measure_s: f64,
}

impl PhaseOutcome {
    /// A sum over the generators' results.
    pub fn sum(&self, f: impl Fn(&PhaseResult) -> u64) -> u64 {
        self.results.iter().map(f).sum()
    }

    /// Requests sent in the measured phase per second, all generators.
    pub fn achieved_per_s(&self) -> f64 {
        self.sum(|r| r.sent_in_window) as f64 / self.measure_s
    }

    /// Sends the schedule intended per second (closed loop: the sends).
    pub fn scheduled_per_s(&self) -> f64 {
        self.sum(|r| r.scheduled) as f64 / self.measure_s
    }

    /// The generators' CPU, summed.
    pub fn client_usage(&self) -> Rusage {
        self.results
            .iter()
            .fold(Rusage::default(), |a, r| rusage::add(a, r.usage))
    }

    /// The servers' counters, summed (CPU and context switches in `rusage`).
    pub fn server_total(&self) -> PeerReport {
        let mut total = PeerReport::default();
        for report in &self.servers {
            total.rusage = rusage::add(total.rusage, report.rusage);
            total.messages += report.messages;
            for (key, value) in &report.extra {
                *total.extra.entry(key.clone()).or_insert(0.0) += value;
            }
        }
        total
    }
}

impl<C: Channel> Processes<C> {
    /// Starts every server, then every generator (pointed at every server address it can
    /// reach). With `generators` (the trial context's), generator `g` runs on agent `g`, its
    /// control listener and the local servers on this machine's address on the route to it.
    ///
    /// # Errors
    /// A process that does not start or connect; processes already started are killed.
    pub(crate) fn start<T: Transport<Channel = C>>(
        transport: &T,
        case: &Case,
        ctx: &TrialContext<'_>,
        layout: Layout,
        stall: Option<Stall>,
    ) -> Result<Processes<C>, TrialError> {
        let fleet: FleetOptions = case.fleet.clone().unwrap_or_default();
        // Local servers of remote generators listen where each agent reaches this machine.
        let mut route_ips: Vec<IpAddr> = Vec::new();
        for link in ctx.generators {
            if !route_ips.contains(&link.local_ip) {
                route_ips.push(link.local_ip);
            }
        }
        let mut servers = Vec::with_capacity(layout.servers.len());
        let mut addresses = Vec::new();
        for (s, &connections) in layout.servers.iter().enumerate() {
            let role = PeerRole::EventServer {
                work_dir: ctx.work_dir.to_owned(),
                stall: stall.filter(|_| s == 0),
                connections,
                listen_ips: if route_ips.is_empty() {
                    layout.server_ips[s].clone()
                } else {
                    route_ips.clone()
                },
                model: fleet.server_model,
            };
            let mut started = fleet::start_peer(transport, case, ctx, &format!("server{s}"), &role, true)?;
            let listening = started.listening.take().unwrap_or_default();
            if listening.all.is_empty() {
                addresses.push(listening.address);
            } else {
                addresses.extend(listening.all);
            }
            servers.push(started);
        }
        // Connection i dials address i mod n: interleave the servers so consecutive
        // connections land on different processes.
        let per_server = addresses.len() / servers.len().max(1);
        let addresses: Vec<String> = (0..per_server)
            .flat_map(|k| (0..servers.len()).map(move |s| s * per_server + k))
            .filter_map(|i| addresses.get(i).cloned())
            .collect();
        let mut generators = Vec::with_capacity(layout.generators.len());
        let mut first = 0;
        // Without `generators` the generators run here, even when the servers run on an agent.
        let local = TrialContext { agent: None, ..*ctx };
        for (g, &connections) in layout.generators.iter().enumerate() {
            let link = ctx.generators.get(g);
            // A local server listens on every route; each agent dials the one it reaches.
            let reachable = |address: &String| {
                link.is_none_or(|link| {
                    case.peer.is_some()
                        || address
                            .parse::<std::net::SocketAddr>()
                            .is_ok_and(|a| a.ip() == link.local_ip)
                })
            };
            let role = PeerRole::LoadGenerator {
                servers: addresses.iter().filter(|a| reachable(a)).cloned().collect(),
                first,
                connections,
                sources: layout.sources,
            };
            let name = format!("generator{g}");
            generators.push(match link {
                None => fleet::start_peer(transport, case, &local, &name, &role, false)?,
                Some(link) => {
                    let on_route = transport.on_ip(link.local_ip).ok_or_else(|| {
                        TrialError::Unsupported(format!("`{}` cannot reach remote generators", transport.name()))
                    })?;
                    let remote = TrialContext {
                        agent: Some(link),
                        ..*ctx
                    };
                    fleet::start_peer(&on_route, case, &remote, &name, &role, false)?
                }
            });
            first += connections;
        }
        let held = vec![0; generators.len()];
        Ok(Processes {
            servers,
            generators,
            layout,
            held,
            buf: vec![0u8; RESULT_BUF_BYTES],
        })
    }

    /// Connections held by every generator together.
    pub(crate) fn total_held(&self) -> u64 {
        self.held.iter().sum()
    }

    /// Waits until the servers together accepted `total` connections.
    fn wait_accepted(&mut self, total: u64) -> Result<(), TrialError> {
        let deadline = Instant::now() + BATCH_TIMEOUT;
        loop {
            let mut accepted = 0;
            for server in &mut self.servers {
                accepted += query_accepted(&mut server.control, &mut self.buf)?.accepted;
            }
            if accepted >= total {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TrialError::Failed(format!(
                    "the servers accepted {accepted} of {total} connections within {BATCH_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Opens connections until the generators hold `target` in all (filling each generator's
    /// share in turn), in batches paced by the servers' accepts; with `exchange`, one request
    /// and its echo on each new connection.
    ///
    /// # Errors
    /// A connection or batch that fails (see [`super::generator`]).
    pub(crate) fn open_until(&mut self, target: u64, exchange: bool) -> Result<(), TrialError> {
        let batch = batch_size();
        for g in 0..self.generators.len() {
            while self.total_held() < target && self.held[g] < self.layout.generators[g] {
                let count = batch
                    .min(self.layout.generators[g] - self.held[g])
                    .min(target - self.total_held());
                let control = &mut self.generators[g].control;
                control.send(&protocol::encode(OPEN, Some(&Open { count, exchange })))?;
                let opened: Opened = parse_body(&expect_control(control, &mut self.buf, OPEN, "OPEN")?, "OPEN")?;
                self.held[g] = opened.held;
                let total = self.total_held();
                self.wait_accepted(total)?;
            }
        }
        Ok(())
    }

    /// Runs `phase` on every generator at once, with the servers' counters taken over its
    /// measured part; merges the generators' histograms.
    ///
    /// # Errors
    /// A generator or server that fails, or sends something malformed.
    pub(crate) fn run_phase(&mut self, phase: &Phase) -> Result<PhaseOutcome, TrialError> {
        let started = Instant::now();
        for generator in &mut self.generators {
            generator.control.send(&protocol::encode(PHASE, Some(phase)))?;
        }
        self.watch_until(started + Duration::from_nanos(phase.warmup_ns))?;
        for server in &mut self.servers {
            server.control.send(&protocol::encode(protocol::MARK, None::<&()>))?;
        }
        self.watch_until(started + Duration::from_nanos(phase.warmup_ns + phase.measure_ns))?;
        let mut servers = Vec::with_capacity(self.servers.len());
        for server in &mut self.servers {
            server.control.send(&protocol::encode(COUNTERS, None::<&()>))?;
            expect_control(&mut server.control, &mut self.buf, protocol::MARK, "the echo of MARK")?;
            let report: PeerReport = parse_body(
                &expect_control(&mut server.control, &mut self.buf, COUNTERS, "COUNTERS")?,
                "COUNTERS",
            )?;
            servers.push(report);
        }
        let mut raw = stats::new_histogram();
        let mut corrected = stats::new_histogram();
        let mut results = Vec::with_capacity(self.generators.len());
        for (g, generator) in self.generators.iter_mut().enumerate() {
            let mut result: PhaseResult = parse_body(
                &expect_control(&mut generator.control, &mut self.buf, RESULT, "RESULT")?,
                "RESULT",
            )?;
            let merge = |into: &mut hdrhistogram::Histogram<u64>, text: &str| {
                let h = stats::decode_histogram(text)
                    .map_err(|e| TrialError::Failed(format!("generator {g} sent a malformed histogram: {e}")))?;
                into.add(&h)
                    .map_err(|e| TrialError::Failed(format!("cannot merge generator {g}'s histogram: {e}")))
            };
            merge(&mut raw, &result.raw)?;
            merge(&mut corrected, &result.corrected)?;
            result.raw.clear();
            result.corrected.clear();
            results.push(result);
        }
        Ok(PhaseOutcome {
            raw,
            corrected,
            results,
            servers,
            measure_s: phase.measure_ns.max(1) as f64 / 1e9,
        })
    }

    /// Sleeps until `at`, looking at every process each [`WATCH_TICK`]: one that ended (a
    /// killed generator agent, a crashed server) fails the phase now instead of at its end.
    fn watch_until(&self, at: Instant) -> Result<(), TrialError> {
        loop {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(WATCH_TICK));
            let ended = |(k, started): (usize, &Started<C>), role: &str| {
                started.process.has_ended().then(|| format!("{role} {k}"))
            };
            let gone = (self.generators.iter().enumerate().find_map(|g| ended(g, "generator")))
                .or_else(|| self.servers.iter().enumerate().find_map(|s| ended(s, "server")));
            if let Some(who) = gone {
                return Err(TrialError::Failed(format!("{who} ended during the phase")));
            }
        }
    }

    /// The servers' resident sets, summed, bytes.
    pub(crate) fn servers_rss(&self) -> Result<u64, TrialError> {
        self.servers
            .iter()
            .map(|s| procstat::vm_rss_bytes(s.ready.pid).map_err(TrialError::Failed))
            .sum()
    }

    /// Ends every generator, then every server, and reaps them all; returns the servers'
    /// reports summed (CPU since their last `MARK`) and the generators' CPU over the trial.
    ///
    /// # Errors
    /// A process that fails, with its own account of why when it gave one.
    pub(crate) fn finish(mut self) -> Result<(PeerReport, Rusage), TrialError> {
        let mut outcome: Result<(PeerReport, Rusage), TrialError> = Ok(Default::default());
        let mut client = Rusage::default();
        for generator in &mut self.generators {
            match fleet::end_and_report(&mut generator.control, &mut self.buf, false) {
                Ok(report) => client = rusage::add(client, report.rusage),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        let mut total = PeerReport::default();
        if outcome.is_ok() {
            for server in &mut self.servers {
                match fleet::end_and_report(&mut server.control, &mut self.buf, false) {
                    Ok(report) => {
                        total.rusage = rusage::add(total.rusage, report.rusage);
                        total.messages += report.messages;
                        for (key, value) in report.extra {
                            *total.extra.entry(key).or_insert(0.0) += value;
                        }
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
        }
        let outcome = outcome.map(|_| (total, client));
        let mut failure = None;
        for mut started in self.generators.into_iter().chain(self.servers) {
            drop(started.control);
            if let Some(f) = started.process.finish(protocol::EXIT_TIMEOUT) {
                failure.get_or_insert(f);
            }
        }
        fleet::merge_failure(outcome, failure)
    }

    /// Kills every process and returns the first one's account of a failure, merged with the
    /// measuring side's `error`.
    pub(crate) fn fail(self, error: TrialError) -> TrialError {
        let mut failure = None;
        // The processes already gone first: their account (a killed agent) is the cause, the
        // others' only what followed.
        let mut all: Vec<Started<C>> = self.generators.into_iter().chain(self.servers).collect();
        all.sort_by_cached_key(|started| !started.process.has_ended());
        for mut started in all {
            drop(started.control);
            if let Some(f) = started.process.finish(Duration::from_millis(200)) {
                failure.get_or_insert(f);
            }
        }
        match fleet::merge_failure::<()>(Err(error), failure) {
            Err(e) => e,
            Ok(()) => TrialError::Failed("a process failed".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(fleet: FleetOptions) -> Case {
        let text = "name = \"t\"\n[[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n";
        let plan = crate::plan::Plan::parse("t", text, &crate::plan::Overrides::default(), 2).unwrap();
        let mut case = plan.cases[0].clone();
        case.fleet = Some(fleet);
        case
    }

    fn machine() -> MachineLimits {
        MachineLimits {
            open_files: 20_000,
            ephemeral_ports: 28_232,
            threads: 100_000,
            memory_bytes: 24 << 30,
        }
    }

    #[test]
    fn shares_differ_by_at_most_one() {
        assert_eq!(shares(10, 3), vec![4, 3, 3]);
        assert_eq!(shares(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(shares(100_000, 6).iter().sum::<u64>(), 100_000);
    }

    #[test]
    fn a_hundred_thousand_connections_need_six_processes_a_side() {
        let l = layout(&case(FleetOptions::default()), 100_000, &machine()).unwrap();
        assert_eq!(l.generators.len(), 6);
        assert_eq!(l.servers.len(), 6);
        // Six destinations: under 28,232 per (source, destination) pair.
        assert_eq!(l.per_port_range, 16_667);
        assert!(l.server_ips.iter().all(Vec::is_empty));
    }

    #[test]
    fn too_few_processes_or_ports_are_refused_with_the_numbers() {
        let few = FleetOptions {
            client_processes: 2,
            ..FleetOptions::default()
        };
        let TrialError::Unsupported(m) = layout(&case(few), 100_000, &machine()).unwrap_err() else {
            panic!()
        };
        assert!(m.contains("50000 per process") && m.contains("at least 6"), "{m}");
        let one_port = FleetOptions {
            server_processes: 1,
            ..FleetOptions::default()
        };
        // 19,000 fit one server process and one destination's 28,232 ports, not 10,000 ports.
        assert!(layout(&case(one_port.clone()), 19_000, &machine()).is_ok());
        let few_ports = MachineLimits {
            ephemeral_ports: 10_000,
            ..machine()
        };
        let TrialError::Unsupported(m) = layout(&case(one_port), 19_000, &few_ports).unwrap_err() else {
            panic!()
        };
        assert!(
            m.contains("19000 per (source, destination) pair") && m.contains("10000 ports"),
            "{m}"
        );
    }

    #[test]
    fn memory_and_threads_are_checked() {
        let small = MachineLimits {
            memory_bytes: 100 << 20,
            ..machine()
        };
        let TrialError::Unsupported(m) = layout(&case(FleetOptions::default()), 100_000, &small).unwrap_err() else {
            panic!()
        };
        assert!(m.contains("MiB are available"), "{m}");
        let threads = FleetOptions {
            server_model: ServerModel::ThreadPerConnection,
            ..FleetOptions::default()
        };
        let few_threads = MachineLimits {
            threads: 5_000,
            ..machine()
        };
        let TrialError::Unsupported(m) = layout(&case(threads), 10_000, &few_threads).unwrap_err() else {
            panic!()
        };
        assert!(m.contains("5000 more threads"), "{m}");
    }

    #[test]
    fn several_server_addresses_count_up_from_loopback() {
        let two = FleetOptions {
            server_processes: 2,
            server_addresses: 2,
            ..FleetOptions::default()
        };
        let l = layout(&case(two), 100, &machine()).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            l.server_ips,
            vec![
                vec![ip("127.0.0.1"), ip("127.0.0.2")],
                vec![ip("127.0.0.3"), ip("127.0.0.4")]
            ]
        );
    }
}
