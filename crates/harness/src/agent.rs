//! The agent (`ipcbench serve`): runs the peer side of trials for a runner on another machine.
//!
//! It is a remote launcher. Each control connection ([`crate::agent_wire`]) gets a handshake
//! (versions, the shared secret's proof) and then at most one `Launch`: the agent checks the
//! spec, starts the same peer child a local run starts (`ipcbench peer --spec JSON`, pinned,
//! dying with the agent), and reports its exit with its last stderr line. The peer connects
//! back to the measuring side's listener over tcp, as a local peer would.
//!
//! Invariants:
//! - It runs nothing but its own peer roles: the child is always this binary's `peer`
//!   subcommand, for the server side of pingpong, stream and rpc, or `load`'s event server or
//!   one of its load generators, over tcp. It dials only the address of the machine on the
//!   control connection, and a generator also the case's `peer` agent (the spec's targets are
//!   checked here; a generator's share of connections and rate against the limits).
//! - Never two trials at once ([`TRIAL_LOCK_WAIT`] bounds the wait for the one running).
//! - A control connection that closes ends its trial: the peer is killed at once. Its own
//!   watchdog bounds the peer's life by the case's timeout and `--max-duration`.
//! - A malformed, oversized or out-of-turn message closes that connection; the agent goes on.
//! - Between connections it holds no descriptor and no child: everything a connection opens
//!   is owned by that connection's thread.

use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::agent_wire::{self, AgentLimits, HANDSHAKE_TIMEOUT, Message, NONCE_BYTES, Secret, Welcome, WireError};
use crate::env::{self, BuildInfo};
use crate::plan::{Case, REMOTE_SCENARIOS, TransportKind, TransportSettings};
use crate::process::LocalProcess;
use crate::protocol::{EXIT_TIMEOUT, PeerSpec};
use crate::remote::IPCBENCH_VERSION;
use crate::scenario::fleet::PeerRole;
use crate::session::PeerCommand;

/// How long a launch waits for another connection's trial to end before it is refused.
pub const TRIAL_LOCK_WAIT: Duration = Duration::from_secs(30);
/// Control connections served at once; more are closed at once.
pub const MAX_SESSIONS: usize = 8;
/// How often a running trial looks at its peer and its control connection.
const TICK: Duration = Duration::from_millis(10);

/// How an agent serves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How to start a peer (this binary's `peer` subcommand).
    pub peer_command: PeerCommand,
    /// Facts about the binary for the manifest it sends.
    pub build: BuildInfo,
    /// The shared secret clients must prove, when set.
    pub token: Option<Secret>,
    /// What a plan may ask.
    pub limits: AgentLimits,
    /// The control protocol version it speaks ([`agent_wire::PROTOCOL_VERSION`]; another only
    /// in the version-mismatch test).
    pub protocol_version: u32,
}

/// Something the agent did, for the CLI to print.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

struct Shared {
    config: ServeConfig,
    log: Log,
    trial: Mutex<()>,
    sessions: AtomicUsize,
}

/// Serves control connections from `listener`, each on its own thread, until accepting fails
/// for good (it retries while the process is out of descriptors); returns that error.
pub fn serve(listener: TcpListener, config: ServeConfig, log: Log) -> std::io::Error {
    let shared = Arc::new(Shared {
        config,
        log,
        trial: Mutex::new(()),
        sessions: AtomicUsize::new(0),
    });
    loop {
        let (stream, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Out of descriptors or similar: wait a little instead of spinning.
            Err(e) if e.raw_os_error().is_some_and(|c| c == 23 || c == 24) => {
                (shared.log)(&format!("cannot accept: {e}"));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return e,
        };
        // Relaxed: a counter that only bounds how many threads run; it orders nothing.
        if shared.sessions.fetch_add(1, Ordering::Relaxed) >= MAX_SESSIONS {
            shared.sessions.fetch_sub(1, Ordering::Relaxed);
            (shared.log)(&format!(
                "{from}: closed: {MAX_SESSIONS} control connections are open already"
            ));
            continue;
        }
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            if let Err(reason) = session(&stream, &shared) {
                (shared.log)(&format!("{from}: {reason}"));
            }
            let _ = stream.shutdown(Shutdown::Both);
            drop(stream);
            shared.sessions.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Sends a refusal (best effort) and returns it as this session's error.
fn refuse(stream: &TcpStream, reason: String) -> Result<(), String> {
    let _ = agent_wire::write_message(stream, &Message::Refused { reason: reason.clone() });
    Err(format!("refused: {reason}"))
}

fn nonce() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; NONCE_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a nonce: {e}"))?;
    Ok(agent_wire::hex(&bytes))
}

/// One control connection: the handshake, then nothing (a pre-flight check) or one launch.
fn session(stream: &TcpStream, shared: &Shared) -> Result<(), String> {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    // A runner whose machine vanishes ends its trial here within seconds (the watcher's read
    // below fails), not at the peer's own timeout.
    agent_wire::detect_dead_peer(stream).map_err(|e| format!("cannot set keepalive: {e}"))?;
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let local_ip = stream.local_addr().map_err(|e| e.to_string())?.ip();
    let client_ip = stream.peer_addr().map_err(|e| e.to_string())?.ip();
    let read = || agent_wire::read_message(stream).map_err(closed);
    let send = |message: &Message| agent_wire::write_message(stream, message).map_err(|e| format!("closed: {e}"));
    match read()? {
        Message::Hello {
            ipcbench_version,
            protocol_version,
        } if ipcbench_version != IPCBENCH_VERSION || protocol_version != config.protocol_version => {
            return refuse(
                stream,
                format!(
                    "version mismatch: the agent runs ipcbench {IPCBENCH_VERSION} with control protocol {}, the \
                     client ipcbench {ipcbench_version} with control protocol {protocol_version}; run the same \
                     ipcbench version on both machines",
                    config.protocol_version
                ),
            );
        }
        Message::Hello { .. } => {}
        other => return refuse(stream, format!("expected `hello` first, got {}", kind_of(&other))),
    }
    let nonce = nonce().or_else(|e| refuse(stream, e).map(|()| String::new()))?;
    send(&Message::Challenge {
        nonce: nonce.clone(),
        token_required: config.token.is_some(),
    })?;
    match (read()?, &config.token) {
        (Message::Proof { .. }, None) => {}
        (Message::Proof { mac: Some(mac) }, Some(secret)) if secret.verify(&nonce, &mac) => {}
        (Message::Proof { mac: Some(_) }, Some(_)) => {
            return refuse(
                stream,
                "bad token: the proof does not match this agent's --token-file (the secrets differ)".into(),
            );
        }
        (Message::Proof { mac: None }, Some(_)) => {
            return refuse(
                stream,
                "this agent requires a token; give `ipcbench run --token-file FILE` with its secret".into(),
            );
        }
        (other, _) => return refuse(stream, format!("expected `proof`, got {}", kind_of(&other))),
    }
    send(&Message::Welcome(Box::new(Welcome {
        ipcbench_version: IPCBENCH_VERSION.into(),
        protocol_version: config.protocol_version,
        environment: env::collect(&config.build),
        limits: config.limits,
    })))?;
    let spec = match agent_wire::read_message(stream) {
        Ok(Message::Launch { spec }) => spec,
        // A pre-flight check ends here.
        Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
        Ok(other) => return refuse(stream, format!("expected `launch`, got {}", kind_of(&other))),
        Err(e) => return Err(closed(e)),
    };
    let spec = match checked_spec(*spec, local_ip, client_ip, config) {
        Ok(spec) => spec,
        Err(reason) => return refuse(stream, reason),
    };
    launch(stream, shared, &spec)
}

/// Why a connection ended while the agent waited for a message.
fn closed(e: WireError) -> String {
    match e {
        WireError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the client closed the connection".into()
        }
        WireError::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            format!("closed: the client sent nothing for {} s", HANDSHAKE_TIMEOUT.as_secs())
        }
        other => format!("closed: {other}"),
    }
}

/// The message's type, for an error that should not echo a whole message.
fn kind_of(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "`hello`",
        Message::Challenge { .. } => "`challenge`",
        Message::Proof { .. } => "`proof`",
        Message::Welcome(_) => "`welcome`",
        Message::Launch { .. } => "`launch`",
        Message::Started { .. } => "`started`",
        Message::Exited { .. } => "`exited`",
        Message::Refused { .. } => "`refused`",
    }
}

/// Checks that `spec` asks for one of the agent's own peer roles within its limits, and points
/// its listeners at this machine's address on the control connection.
fn checked_spec(
    mut spec: PeerSpec,
    local_ip: IpAddr,
    client_ip: IpAddr,
    config: &ServeConfig,
) -> Result<PeerSpec, String> {
    let case = &spec.case;
    if !REMOTE_SCENARIOS.contains(&case.scenario) {
        return Err(format!(
            "scenario `{}` cannot run on an agent; agents serve pingpong, stream, rpc and load",
            case.scenario.as_str()
        ));
    }
    if case.transport.kind() != TransportKind::Tcp || case.back_transport.is_some() {
        return Err(format!(
            "an agent's peer speaks plain tcp only, not `{}`",
            case.transport.kind()
        ));
    }
    if case.delay_ms.is_some() || case.rate_mbit.is_some() {
        return Err("an agent's peer runs on the agent's own network, never behind a delayed link".into());
    }
    let is_load = case.scenario == crate::plan::ScenarioKind::Load;
    let (role_ok, generator) = match PeerRole::of(&spec) {
        None => (spec.extra.is_null() && !is_load, None),
        Some(PeerRole::EventServer { stall: None, .. }) => (is_load, None),
        Some(PeerRole::LoadGenerator {
            servers,
            connections,
            sources,
            ..
        }) => (is_load, Some((servers, connections, sources))),
        Some(_) => (false, None),
    };
    if !role_ok {
        return Err("the spec asks for a peer role this agent does not run".into());
    }
    if let Some((servers, connections, sources)) = &generator {
        checked_generator(case, servers, sources.is_some(), client_ip)?;
        if let Some(reason) = config.limits.refusal_of_share(case, *connections, " as a generator") {
            return Err(reason);
        }
    }
    let dial: std::net::SocketAddr = spec
        .address
        .parse()
        .map_err(|_| format!("the peer's address `{}` is not IP:PORT", spec.address))?;
    if dial.ip() != client_ip {
        return Err(format!(
            "the peer would dial {}, but the client is {client_ip}; an agent's peer connects back only to its client",
            dial.ip()
        ));
    }
    let cores = crate::affinity::online_cores();
    let (side, core) = match generator {
        Some(_) => ("generator", case.placement.client),
        None => ("server", case.placement.server),
    };
    if core >= cores {
        return Err(format!(
            "the case pins the {side} to core {core}, but this machine has {cores} cores (0..{})",
            cores.saturating_sub(1)
        ));
    }
    if generator.is_none()
        && let Some(reason) = config.limits.refusal(case)
    {
        return Err(reason);
    }
    if let TransportSettings::Tcp { listen_ip, .. } = &mut spec.case.transport {
        *listen_ip = Some(local_ip);
    }
    if let Some(PeerRole::EventServer {
        stall,
        connections,
        model,
        ..
    }) = PeerRole::of(&spec)
    {
        // The agent's own directory and address: the client's say nothing of this machine.
        spec.extra = PeerRole::EventServer {
            work_dir: std::env::temp_dir(),
            stall,
            connections,
            listen_ips: Vec::new(),
            model,
        }
        .to_json();
    }
    Ok(spec)
}

/// Checks a load generator's targets: it dials only the client (the machine on the control
/// connection) or the case's `peer` agent, from the agent's own address.
fn checked_generator(case: &Case, servers: &[String], has_sources: bool, client_ip: IpAddr) -> Result<(), String> {
    if has_sources {
        return Err(
            "a generator on an agent dials from the agent's own address; source addresses are the client's loopback"
                .into(),
        );
    }
    if servers.is_empty() {
        return Err("the generator's spec names no server to dial".into());
    }
    let peer_ip = case.peer.map(|p| p.ip());
    for server in servers {
        let ip = server
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("the generator's server address `{server}` is not IP:PORT"))?
            .ip();
        if ip != client_ip && Some(ip) != peer_ip {
            return Err(format!(
                "the generator would dial {ip}, but an agent's generator dials only its client ({client_ip}){}",
                peer_ip.map_or(String::new(), |p| format!(" or the case's peer agent ({p})"))
            ));
        }
    }
    Ok(())
}

/// Runs the peer of `spec` until it exits or the control connection closes.
fn launch(stream: &TcpStream, shared: &Shared, spec: &PeerSpec) -> Result<(), String> {
    let config = &shared.config;
    let waited_from = Instant::now();
    let _trial = loop {
        match shared.trial.try_lock() {
            Ok(guard) => break guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if waited_from.elapsed() < TRIAL_LOCK_WAIT => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return refuse(
                    stream,
                    format!(
                        "busy: another run's trial has held this agent for {} s",
                        TRIAL_LOCK_WAIT.as_secs()
                    ),
                );
            }
        }
    };
    let timeout = match config.limits.max_duration_ns {
        // The measured phase is checked against the limit; the slack covers start and report.
        Some(max_ns) => spec.case.timeout.min(Duration::from_nanos(max_ns) + EXIT_TIMEOUT * 2),
        None => spec.case.timeout,
    };
    let mut process = match LocalProcess::spawn(&config.peer_command, spec, timeout) {
        Ok(process) => process,
        Err(e) => return refuse(stream, e.to_string()),
    };
    (shared.log)(&format!(
        "{}: peer pid {} for {}",
        stream.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        process.pid(),
        spec.case.id
    ));
    if agent_wire::write_message(stream, &Message::Started { pid: process.pid() }).is_err() {
        let _ = process.finish(Duration::ZERO);
        return Err("closed before the peer started".into());
    }
    // Anything the client sends now, or its going away, ends the trial.
    let (gone_tx, gone) = bounded::<()>(1);
    let reader = stream
        .try_clone()
        .map_err(|e| format!("cannot watch the control connection: {e}"))?;
    let _ = reader.set_read_timeout(None);
    let watcher = thread::spawn(move || {
        let _ = agent_wire::read_message(&reader);
        let _ = gone_tx.send(());
    });
    let client_gone = loop {
        if process.has_exited() {
            break false;
        }
        if gone.recv_timeout(TICK).is_ok() {
            break true;
        }
    };
    let outcome = if client_gone {
        let _ = process.finish(Duration::ZERO);
        Err("the client went away; its peer was killed".to_owned())
    } else {
        let failure = process.finish(EXIT_TIMEOUT);
        agent_wire::write_message(stream, &Message::Exited { failure })
            .map_err(|e| format!("could not report the peer's exit: {e}"))
    };
    // Ends the watcher's read, so the thread and its descriptor are gone before we return.
    let _ = stream.shutdown(Shutdown::Both);
    let _ = watcher.join();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_case(peer: Option<&str>) -> Case {
        let peer = peer.map_or(String::new(), |p| format!("peer = \"{p}\"\n"));
        let text = format!(
            "name = \"t\"\n{peer}[[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n\
             generators = [\"198.18.0.6:7100\"]\n"
        );
        let plan = crate::plan::Plan::parse("t", &text, &crate::plan::Overrides::default(), 2).unwrap();
        plan.cases[0].clone()
    }

    #[test]
    fn a_generator_dials_only_its_client_or_the_cases_peer() {
        let client: IpAddr = "198.18.0.5".parse().unwrap();
        let servers = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let alone = load_case(None);
        assert!(checked_generator(&alone, &servers(&["198.18.0.5:4000"]), false, client).is_ok());
        let e = checked_generator(&alone, &servers(&["198.18.0.5:4000", "10.0.0.1:80"]), false, client).unwrap_err();
        assert!(
            e.contains("would dial 10.0.0.1") && e.contains("only its client (198.18.0.5)"),
            "{e}"
        );
        let with_peer = load_case(Some("198.18.0.9:7100"));
        assert!(checked_generator(&with_peer, &servers(&["198.18.0.9:4000"]), false, client).is_ok());
        let e = checked_generator(&with_peer, &servers(&["198.18.0.13:4000"]), false, client).unwrap_err();
        assert!(e.contains("or the case's peer agent (198.18.0.9)"), "{e}");
        let e = checked_generator(&alone, &servers(&["198.18.0.5:4000"]), true, client).unwrap_err();
        assert!(e.contains("source addresses"), "{e}");
        assert!(checked_generator(&alone, &servers(&["nonsense"]), false, client).is_err());
        assert!(checked_generator(&alone, &[], false, client).is_err());
    }
}
