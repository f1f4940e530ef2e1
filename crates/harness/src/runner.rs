//! Running a whole plan: repetitions in interleaved order, per-case summaries, the record.
//!
//! Trials run round by round: round `r` runs the `r`-th trial of every case, in an order
//! shuffled per round (fixed seed), so a noisy minute spreads over all transports instead of
//! landing on one. A case whose trial fails is marked failed and skipped from then on; the
//! rest of the run goes on. After every trial the caller gets the record so far, so an
//! interrupted run can keep what it completed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use ipcbench_core::Transport;
use ipcbench_core::baseline::NullTransport;

use crate::dispatch::{Dispatch, TransportVisitor};
use crate::env::{self, BuildInfo};
use crate::plan::{Amount, Case, CorePair, Plan, TransportKind};
use crate::session::{PeerCommand, TrialContext, TrialError, TrialOutput};
use crate::trial::run_trial;
use crate::{calibration, clock};
use ipcbench_record::finish::{FinishContext, finish_case, run_warnings};
use ipcbench_record::stats::SplitMix64;
use ipcbench_record::{CaseRecord, Placement, RunRecord, SCHEMA, Status};

/// What a run needs besides its plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How to start peer processes.
    pub peer_command: PeerCommand,
    /// A private directory for socket files and FIFOs (removed by the caller).
    pub work_dir: PathBuf,
    /// Facts about the binary for the manifest.
    pub build: BuildInfo,
    /// Set (by a Ctrl-C handler) to stop after the current trial.
    pub stop: Arc<AtomicBool>,
    /// The agents the plan names in `peer`, contacted before the run
    /// ([`crate::remote::contact`]); empty for a run on one machine.
    pub agents: Vec<crate::remote::Agent>,
}

/// Progress, reported after each trial.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The case the trial belonged to.
    pub case: &'a Case,
    /// Trials finished so far (including skipped ones).
    pub done: usize,
    /// Trials in the whole plan.
    pub total: usize,
}

struct TrialVisitor<'a> {
    case: &'a Case,
    ctx: TrialContext<'a>,
}

impl TransportVisitor for TrialVisitor<'_> {
    type Output = Result<TrialOutput, TrialError>;
    fn visit<T: Transport + 'static>(self, transport: T) -> Self::Output {
        run_trial(transport, self.case, &self.ctx)
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A case record before any trial ran.
fn empty_record(case: &Case) -> CaseRecord {
    let no_peer = case.transport.kind() == TransportKind::Null;
    CaseRecord {
        id: case.id.clone(),
        scenario: case.scenario.as_str().into(),
        transport: match (&case.back_transport, &case.http) {
            (Some(back), _) => format!("{}->{}", case.transport.kind(), back.kind()),
            // http's front is loopback TCP; its back side may be a Unix socket.
            (None, Some(http)) if http.back_uds => format!("{}->uds", case.transport.kind()),
            _ => case.transport.kind().to_string(),
        },
        peer_mode: match case.transport.kind() {
            TransportKind::Null => "none",
            TransportKind::Inproc => "thread",
            _ => "process",
        }
        .into(),
        transport_options: case.transport.options_json(),
        applied_options: Default::default(),
        message_bytes: case.message_bytes,
        reply_bytes: Some(case.reply_bytes).filter(|_| case.scenario.as_str() != "stream"),
        total_bytes: case.total_bytes,
        connections: case.connections,
        rate_per_connection_hz: case.rate_per_connection_hz,
        window: case.window,
        delay_ms: case.delay_ms,
        cores: Placement {
            client: case.placement.client,
            server: (!no_peer).then_some(case.placement.server),
            label: if no_peer {
                "no-peer".into()
            } else {
                CorePair::label(case.placement).into()
            },
            client_applied: Vec::new(),
            server_applied: Vec::new(),
        },
        status: Status::Ok,
        reason: None,
        flags: Vec::new(),
        trials: Vec::new(),
        summary: None,
        extra: {
            let mut extra = case.http.as_ref().map(http_settings).unwrap_or_default();
            if !case.generators.is_empty() {
                // Who `agent<k>_...` in the trials' figures is: the k-th of these.
                extra.insert(
                    "generators".into(),
                    case.generators.iter().map(|a| a.to_string()).collect::<Vec<_>>().into(),
                );
            }
            if case.scenario.keys().contains(&"verify") {
                // What the receiver checked of each message (`full` or `sampled`).
                extra.insert("verify".into(), case.verify.as_str().into());
            }
            extra
        },
        pairs: Vec::new(),
    }
}

/// The record's `agents`: each agent once per role it has in the plan (`peer`: the server
/// side of the cases whose `peer` names it; `generator`: a share of the client fleet of the
/// cases whose `generators` name it), with the cases.
fn agent_records(plan: &Plan, agents: &[crate::remote::Agent]) -> Vec<ipcbench_record::AgentRecord> {
    let mut records = Vec::new();
    for agent in agents {
        let address = agent.link.address;
        for role in ["peer", "generator"] {
            let serves = |c: &Case| match role {
                "peer" => c.peer == Some(address),
                _ => c.generators.contains(&address),
            };
            let case_ids: Vec<String> = plan.cases.iter().filter(|c| serves(c)).map(|c| c.id.clone()).collect();
            if case_ids.is_empty() {
                continue;
            }
            records.push(ipcbench_record::AgentRecord {
                address: address.to_string(),
                role: role.into(),
                version: agent.welcome.ipcbench_version.clone(),
                protocol_version: agent.welcome.protocol_version,
                environment: agent.welcome.environment.clone(),
                case_ids,
            });
        }
    }
    records
}

/// Removes what stores of an earlier run left when that run was killed (`kill -9` gives a
/// store no chance to clean up; its servers die with it, through their death signal): the
/// stale store folders beside this run's work folder, where `balance` trials make theirs.
/// Every run sweeps, whatever its plan, so the next run of any plan cleans up.
/// Returns a warning for what it removed or could not.
fn sweep_stale_stores(options: &RunOptions) -> Vec<String> {
    let parent = options.work_dir.parent().unwrap_or(&options.work_dir);
    match ipcbench_store::sweep_stale(parent) {
        Ok(report) if report.removed.is_empty() => Vec::new(),
        Ok(report) => vec![format!(
            "removed {} store folder(s) left by a killed run in {} (and stopped {} server(s) still running)",
            report.removed.len(),
            parent.display(),
            report.killed.len()
        )],
        Err(e) => vec![format!("cannot sweep stale store folders in {}: {e}", parent.display())],
    }
}

/// The settings of an `http` case as its record's `extra` carries them (for tables and charts).
fn http_settings(http: &crate::plan::HttpCase) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("front".into(), http.front.as_str().into());
    extra.insert("back".into(), http.back.as_str().into());
    extra.insert(
        "path".into(),
        format!("{}->{}", http.front.as_str(), http.back.as_str()).into(),
    );
    extra.insert("relay".into(), http.relay.label().into());
    extra.insert("tls".into(), http.tls.into());
    extra.insert("streams".into(), http.streams.into());
    extra.insert("keep_alive".into(), http.keep_alive.into());
    extra.insert("pool_connections".into(), http.pool_connections.into());
    extra.insert("cache_hit_ratio".into(), http.cache_hit_ratio.into());
    extra.insert("request_headers".into(), http.request_headers.into());
    extra.insert("header_value_bytes".into(), http.header_value_bytes.into());
    if let crate::plan::HttpRelay::External { address, pid, .. } = &http.relay {
        extra.insert("relay_address".into(), address.clone().into());
        if let Some(pid) = pid {
            extra.insert("relay_pid".into(), (*pid).into());
        }
    }
    extra
}

/// Measures the harness's own cost per round trip with the `null` transport (64-byte messages).
fn null_floor_ns(options: &RunOptions, client_core: usize) -> f64 {
    let case = Case {
        index: usize::MAX,
        id: "calibration/null".into(),
        scenario: crate::plan::ScenarioKind::Pingpong,
        transport: crate::plan::TransportSettings::Null { delay_ns: 0 },
        back_transport: None,
        message_bytes: 64,
        reply_bytes: 64,
        total_bytes: None,
        window: None,
        delay_ms: None,
        rate_mbit: None,
        connections: None,
        rate_per_connection_hz: None,
        schedule: Default::default(),
        server_loops: 1,
        convert: crate::plan::Convert::None,
        step: None,
        http: None,
        bare: false,
        verify: Default::default(),
        placement: CorePair {
            client: client_core,
            server: client_core,
        },
        repetitions: 1,
        warmup: Amount::Time(std::time::Duration::from_millis(20)),
        measure: Amount::Time(std::time::Duration::from_millis(100)),
        timeout: std::time::Duration::from_secs(10),
        balance: None,
        fleet: None,
        peer: None,
        generators: Vec::new(),
    };
    let ctx = TrialContext {
        work_dir: &options.work_dir,
        peer_command: &options.peer_command,
        trial_idx: 0,
        agent: None,
        generators: &[],
    };
    // The trial pins the calling thread; run it on its own so the caller's affinity is untouched.
    std::thread::scope(|s| {
        s.spawn(|| run_trial(NullTransport::default(), &case, &ctx))
            .join()
            .ok()
            .and_then(Result::ok)
            .and_then(|out| out.trial.latency_ns.map(|l| l.p50))
            .unwrap_or(0.0)
    })
}

/// Runs every case of `plan`; `on_progress` sees each finished trial and the record so far.
///
/// Trials pin the calling thread to each case's client core; its affinity is restored before
/// this returns, so a second run in the same process starts as the first did.
pub fn run<D: Dispatch>(
    plan: &Plan,
    dispatch: &D,
    options: &RunOptions,
    on_progress: &mut dyn FnMut(Progress<'_>, &RunRecord),
) -> RunRecord {
    let original_affinity = crate::affinity::current_affinity();
    let record = run_pinned(plan, dispatch, options, on_progress);
    if !original_affinity.is_empty() {
        // Best effort: a thread that cannot widen its affinity again keeps the last pin, which
        // the record of a later run shows in its placement read-back.
        let _ = crate::affinity::set_affinity(&original_affinity);
    }
    record
}

fn run_pinned<D: Dispatch>(
    plan: &Plan,
    dispatch: &D,
    options: &RunOptions,
    on_progress: &mut dyn FnMut(Progress<'_>, &RunRecord),
) -> RunRecord {
    let environment = env::collect(&options.build);
    let mut warnings = env::warnings(&environment);
    // The other machines' conditions count as much as this one's.
    for agent in &options.agents {
        warnings.extend(
            env::warnings(&agent.welcome.environment)
                .into_iter()
                .map(|w| format!("agent {}: {w}", agent.link.address)),
        );
    }
    warnings.extend(sweep_stale_stores(options));
    let mut clock_info = clock::calibrate();
    let first_client = plan.cases.first().map(|c| c.placement.client).unwrap_or(0);
    clock_info.null_floor_ns = null_floor_ns(options, first_client);
    let limits = calibration::measure(plan);
    let mut record = RunRecord {
        schema: SCHEMA.into(),
        name: plan.name.clone(),
        started_at: now_rfc3339(),
        finished_at: String::new(),
        config: plan.config_json.clone(),
        config_source: plan.source_name.clone(),
        config_sha256: plan.sha256.clone(),
        environment,
        clock: clock_info,
        calibration: Some(limits),
        warnings: Vec::new(),
        interrupted: false,
        cases: plan.cases.iter().map(empty_record).collect(),
        paired: None,
        agents: agent_records(plan, &options.agents),
    };
    let rounds = plan.cases.iter().map(|c| c.repetitions as usize).max().unwrap_or(0);
    let total: usize = plan.cases.iter().map(|c| c.repetitions as usize).sum();
    let mut done = 0;
    let mut rng = SplitMix64::new(0x5EED);
    'rounds: for round in 0..rounds {
        let mut order: Vec<usize> = (0..plan.cases.len())
            .filter(|&i| (plan.cases[i].repetitions as usize) > round)
            .collect();
        // Fisher-Yates with the run's fixed seed.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for case_idx in order {
            // Relaxed: a flag polled between trials; nothing else is published through it.
            if options.stop.load(Ordering::Relaxed) || crate::session::stop_requested() {
                record.interrupted = true;
                break 'rounds;
            }
            let case = &plan.cases[case_idx];
            if record.cases[case_idx].status == Status::Ok {
                // A case with `delay_ms` runs its peer behind a delayed link (crate::netns).
                let result = crate::netns::with_link(case, &options.peer_command, |case, peer_command| {
                    // A case with `peer` runs its server side on that agent, and listens on this
                    // machine's address on the route to it.
                    let contacted = |address: std::net::SocketAddr| {
                        options
                            .agents
                            .iter()
                            .find(|a| a.link.address == address)
                            .ok_or_else(|| {
                                TrialError::Failed(format!("the agent at {address} was not contacted before the run"))
                            })
                    };
                    let (remote_case, agent) = match case.peer {
                        Some(address) => {
                            let agent = contacted(address)?;
                            let mut linked = case.clone();
                            if let crate::plan::TransportSettings::Tcp { listen_ip, .. } = &mut linked.transport {
                                *listen_ip = Some(agent.link.local_ip);
                            }
                            (Some(linked), Some(&agent.link))
                        }
                        None => (None, None),
                    };
                    let case = remote_case.as_ref().unwrap_or(case);
                    // A case with `generators` runs one generator process on each of those agents.
                    let generators = case
                        .generators
                        .iter()
                        .map(|&address| contacted(address).map(|agent| agent.link.clone()))
                        .collect::<Result<Vec<_>, _>>()?;
                    let ctx = TrialContext {
                        work_dir: &options.work_dir,
                        peer_command,
                        trial_idx: round,
                        agent,
                        generators: &generators,
                    };
                    match &case.back_transport {
                        // A proxy case needs both of its transports (scenario/proxy.rs).
                        Some(back) => crate::scenario::proxy::dispatch_trial(dispatch, case, back, ctx),
                        None => dispatch.dispatch(&case.transport, TrialVisitor { case, ctx }),
                    }
                    .unwrap_or_else(|reason| Err(TrialError::Unsupported(reason)))
                });
                let RunRecord {
                    cases,
                    clock,
                    calibration,
                    ..
                } = &mut record;
                let case_record = &mut cases[case_idx];
                match result {
                    Ok(output) => {
                        case_record.applied_options = output.applied_options;
                        case_record.cores.client_applied = output.client_cores;
                        case_record.cores.server_applied = output.server_cores;
                        case_record.trials.push(output.trial);
                    }
                    Err(TrialError::Unsupported(reason)) => {
                        case_record.status = Status::Unsupported;
                        case_record.reason = Some(reason);
                    }
                    Err(TrialError::Failed(reason)) => {
                        if options.stop.load(Ordering::Relaxed) || crate::session::stop_requested() {
                            // The failure is the interruption itself: keep the trials it completed,
                            // and say which trial was cut short.
                            case_record.flags.push(format!(
                                "interrupted during trial {} of {}; the trials before it are kept",
                                round + 1,
                                case.repetitions
                            ));
                            record.interrupted = true;
                            break 'rounds;
                        }
                        case_record.status = Status::Failed;
                        case_record.reason = Some(format!("trial {} of {}: {reason}", round + 1, case.repetitions));
                    }
                }
                let context = FinishContext {
                    clock_overhead_ns: clock.overhead_ns,
                    calibration: calibration.as_ref(),
                    link_rate_mbit: case.rate_mbit,
                };
                finish_case(case_record, &context);
            }
            done += 1;
            record.finished_at = now_rfc3339();
            on_progress(Progress { case, done, total }, &record);
        }
    }
    if record.interrupted {
        warnings.push(
            "the run was interrupted: cases not run are absent, partial cases keep their completed trials".into(),
        );
        let ran: std::collections::HashSet<_> = record
            .cases
            .iter()
            .filter(|c| {
                !c.trials.is_empty() || c.status != Status::Ok || c.flags.iter().any(|f| f.starts_with("interrupted"))
            })
            .map(|c| c.id.clone())
            .collect();
        record.cases.retain(|c| ran.contains(&c.id));
    }
    for case in &record.cases {
        if case.status == Status::Ok
            && let Some(summary) = &case.summary
            && summary.n_trials > 0
            && summary.messages_per_s == 0.0
        {
            warnings.push(format!("{}: no messages were measured", case.id));
        }
    }
    warnings.extend(run_warnings(&record.cases));
    record.warnings = warnings;
    record.finished_at = now_rfc3339();
    record
}
