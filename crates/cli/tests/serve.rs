//! `ipcbench serve`, the agent, against real `ipcbench run`s: the handshake's refusals (a bad
//! token, a version mismatch) exit 2 while the agent serves on; hostile control messages close
//! only their connection; an agent holds no descriptor or child after 100 handshakes and 20
//! trials; limits are refused with their name; and, in a network namespace joined by a veth
//! pair (198.18.0.0/15, made and removed here; skipped with the reason when not root or
//! without `ip`), pingpong, stream, rpc and load against the agent, and an agent killed
//! mid-trial failing its case within seconds while the run goes on.
//!
//! Every bound is far above what the behaviour needs (a killed agent is noticed within about a
//! second; the test allows 40 s of a 60 s trial).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipcbench_harness::netns::{Link, LinkSpec, PEER_ADDRESS};

mod common;
use common::{bin, run_bounded, text};

/// A running agent: killed and reaped on drop; its stderr collected.
struct Agent {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts `ipcbench serve --listen IP:0 EXTRA...`, inside `namespace` when given, and
    /// waits for the address it prints.
    fn start(ip: &str, namespace: Option<&str>, extra: &[&str]) -> Agent {
        let listen = format!("{ip}:0");
        let mut command = match namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let mut child = command
            .args(["serve", "--listen", &listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the agent prints its address");
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Agent { child, address, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// True once the agent's stderr holds `needle` (its stderr is read on a thread of its own,
    /// so a line may arrive after the address on stdout); waits at most 20 s.
    fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// True while the agent process runs.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A short pingpong plan over tcp with its server side on `peer`.
fn pingpong_plan(dir: &Path, name: &str, peer: SocketAddr, extra: &str) -> String {
    let plan = dir.join(format!("{name}.toml"));
    std::fs::write(
        &plan,
        format!(
            "name = \"{name}\"\nrepetitions = 1\nwarmup = 100\nmessages = 300\ncores = [0, 1]\npeer = \"{peer}\"\n\
             {extra}\n[[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n"
        ),
    )
    .unwrap();
    plan.display().to_string()
}

fn run_plan(plan: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let mut args = vec!["run", plan, "--out", &out];
    args.extend(extra);
    run_bounded(&args, Duration::from_secs(120)).0
}

fn record(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

/// Runs the plan `text` into `dir/out`, expecting exit 0 (showing the `agents`' logs if not);
/// returns the folder and its record.
fn run_ok(dir: &Path, text_of_plan: &str, agents: &[&Agent]) -> (std::path::PathBuf, serde_json::Value) {
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, text_of_plan).unwrap();
    let out = dir.join("out");
    let output = run_plan(plan.to_str().unwrap(), &out, &[]);
    let logs: Vec<String> = agents
        .iter()
        .map(|a| format!("agent {}:\n{}", a.address, a.log()))
        .collect();
    assert_eq!(output.status.code(), Some(0), "{}\n{}", text(&output), logs.join("\n"));
    let run = record(&out);
    (out, run)
}

/// The agent's open descriptors and child processes.
fn holdings(pid: u32) -> (usize, Vec<String>) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            children.extend(list.split_whitespace().map(str::to_owned));
        }
    }
    (fds, children)
}

#[test]
fn bad_token_and_version_mismatch_exit_2_and_the_agent_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right");
    let wrong = dir.path().join("wrong");
    std::fs::write(&right, "correct horse\n").unwrap();
    std::fs::write(&wrong, "battery staple\n").unwrap();
    let mut agent = Agent::start("127.0.0.1", None, &["--token-file", right.to_str().unwrap()]);
    assert!(!agent.log().contains("no --token-file"), "{}", agent.log());
    let plan = pingpong_plan(dir.path(), "token", agent.address, "");
    for (token, expected) in [
        (Some(&wrong), "bad token"),
        (None, "requires a token"),
        (Some(&right), ""),
        (Some(&wrong), "bad token"),
        (Some(&right), ""),
    ] {
        let out = dir.path().join(format!("out-{}", expected.len()));
        let _ = std::fs::remove_dir_all(&out);
        let flags: Vec<&str> = token
            .map(|t| vec!["--token-file", t.to_str().unwrap()])
            .unwrap_or_default();
        let output = run_plan(&plan, &out, &flags);
        if expected.is_empty() {
            assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        } else {
            assert_eq!(output.status.code(), Some(2), "{}", text(&output));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(
                stderr.contains(expected) && stderr.contains(&agent.address.to_string()),
                "{stderr}"
            );
            // The secret itself never appears anywhere.
            assert!(!stderr.contains("horse") && !agent.log().contains("horse"));
        }
        assert!(agent.alive(), "the agent is still serving");
    }
    // `ipcbench ci` proves the same secret (its last good run above is the baseline).
    let baseline = dir.path().join(format!("out-{}", "".len())).join("run.json");
    for (token, refused) in [(None, true), (Some(&right), false)] {
        let out = dir.path().join(format!("ci-{refused}"));
        let (baseline, out) = (baseline.display().to_string(), out.display().to_string());
        let mut args = vec!["ci", "--baseline", &baseline, "--confirm", "0", "--out", &out, &plan];
        if let Some(token) = token {
            args.extend(["--token-file", token.to_str().unwrap()]);
        }
        let (output, _) = run_bounded(&args, Duration::from_secs(120));
        if refused {
            assert_eq!(output.status.code(), Some(2), "{}", text(&output));
            assert!(
                String::from_utf8_lossy(&output.stderr).contains("requires a token"),
                "{}",
                text(&output)
            );
        } else {
            // A verdict either way (0 or 1), and the agent ran the server side.
            assert!(matches!(output.status.code(), Some(0 | 1)), "{}", text(&output));
            let agents = record(Path::new(&out))["agents"].clone();
            assert_eq!(agents.as_array().map(Vec::len), Some(1), "{agents}");
        }
        assert!(agent.alive(), "the agent is still serving");
    }

    let mut other = Agent::start("127.0.0.1", None, &["--claim-protocol-version", "99"]);
    assert!(other.logged("warning: no --token-file"), "{}", other.log());
    let plan = pingpong_plan(dir.path(), "mismatch", other.address, "");
    for _ in 0..2 {
        let output = run_plan(&plan, &dir.path().join("mismatch-out"), &[]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("version mismatch") && stderr.contains("control protocol 99"),
            "{stderr}"
        );
        assert!(other.alive(), "the agent is still serving");
    }
    // It still answers a handshake.
    let contacted = ipcbench_harness::remote::contact_claiming(other.address, None, 99);
    assert!(contacted.is_ok(), "{contacted:?}");
}

#[test]
fn malformed_and_oversized_control_messages_close_only_their_connection() {
    let mut agent = Agent::start("127.0.0.1", None, &[]);
    let hostile: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        u32::MAX.to_be_bytes().to_vec(),
        [&5u32.to_be_bytes()[..], b"hello"].concat(),
        [&2u32.to_be_bytes()[..], b"{}"].concat(),
        // A launch before the handshake.
        [&30u32.to_be_bytes()[..], br#"{"type":"started","pid":1}   "#].concat(),
        vec![0u8; 3],
        Vec::new(),
    ];
    for bytes in &hostile {
        let mut stream = TcpStream::connect_timeout(&agent.address, Duration::from_secs(5)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // The agent answers with at most a refusal, then closes.
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.len() < 4096, "{} bytes", answer.len());
        assert!(agent.alive(), "the agent survived {bytes:?}");
    }
    let contacted = ipcbench_harness::remote::contact(agent.address, None);
    assert!(contacted.is_ok(), "{contacted:?}");
    // A launch of a role the agent does not run is refused and the agent goes on.
    assert!(agent.alive());
}

#[test]
fn agent_holds_no_descriptor_or_child_after_100_handshakes_and_20_trials() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start("127.0.0.1", None, &[]);
    // The first handshake opens whatever the agent keeps for good (nothing, ideally).
    ipcbench_harness::remote::contact(agent.address, None).unwrap();
    let settle = |expected_fds: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (fds, children) = holdings(agent.pid());
            if (fds <= expected_fds && children.is_empty()) || Instant::now() > deadline {
                return (fds, children);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (before, children) = settle(usize::MAX);
    assert!(children.is_empty(), "{children:?}");
    for _ in 0..100 {
        ipcbench_harness::remote::contact(agent.address, None).unwrap();
    }
    let plan = pingpong_plan(dir.path(), "many", agent.address, "");
    let text_plan = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("repetitions = 1", "repetitions = 20");
    std::fs::write(&plan, text_plan).unwrap();
    let output = run_plan(&plan, &dir.path().join("out"), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let run = record(&dir.path().join("out"));
    assert_eq!(run["cases"][0]["trials"].as_array().unwrap().len(), 20);
    let (after, children) = settle(before);
    assert!(after <= before, "descriptors: {before} before, {after} after");
    assert!(children.is_empty(), "children left: {children:?}");
}

#[test]
fn plans_beyond_an_agents_limits_or_its_scenarios_are_refused_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        "127.0.0.1",
        None,
        &["--max-connections", "5", "--max-duration", "2s", "--max-rate", "100"],
    );
    let load = |connections: u64, rate: u64, duration: &str| {
        format!(
            "name = \"limits\"\nrepetitions = 1\nwarmup = \"50ms\"\nduration = \"{duration}\"\ncores = [0, 1]\n\
             peer = \"{}\"\n[[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n\
             connections = {connections}\nrate_per_connection_hz = {rate}\n",
            agent.address
        )
    };
    // As the only generator agent, it holds the whole fleet: the same limits bound its share.
    let as_generator = |text: String| {
        text.replace("peer = ", "generators = ")
            .replace(&format!("\"{}\"", agent.address), &format!("[\"{}\"]", agent.address))
    };
    for (plan_text, expected) in [
        (load(6, 10, "200ms"), "--max-connections"),
        (load(5, 21, "200ms"), "--max-rate"),
        (load(5, 10, "3s"), "--max-duration"),
        (as_generator(load(6, 10, "200ms")), "6 connections as a generator"),
        (as_generator(load(5, 21, "200ms")), "messages/s as a generator"),
    ] {
        let plan = dir.path().join("limits.toml");
        std::fs::write(&plan, plan_text).unwrap();
        let output = run_plan(plan.to_str().unwrap(), &dir.path().join("out"), &[]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected) && stderr.lines().count() == 1, "{stderr}");
    }
    // Plan errors, before any agent is contacted: a transport or scenario that cannot be remote,
    // and for `generators` the keys that name this machine's own loopback addresses.
    let peer = format!("peer = \"{}\"", agent.address);
    let generators = format!("generators = [\"{}\"]", agent.address);
    let load_on = |transports: &str, extra: &str| {
        format!("kind = \"load\"\ntransports = [{transports}]\nmessage_bytes = 64\n{extra}")
    };
    for (top, scenario, expected) in [
        (
            &peer,
            "kind = \"pingpong\"\ntransports = [\"tcp\", \"uds\"]\nmessage_bytes = 64\n".to_owned(),
            "limits.toml:5:1: `uds` cannot reach a remote peer",
        ),
        (
            &peer,
            "kind = \"proxy\"\nfront = [\"tcp\"]\nback = [\"tcp\"]\nmessage_bytes = 64\n".to_owned(),
            "limits.toml:1:1: `peer` runs the server side on an agent for pingpong, stream, rpc and load",
        ),
        (
            &peer,
            "kind = \"rpc\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\ndelay_ms = 1\n".to_owned(),
            "limits.toml:7:1: `delay_ms` puts a local peer behind a delayed link",
        ),
        (
            &generators,
            load_on("\"uds\"", ""),
            "limits.toml:5:1: `uds` cannot reach remote generators",
        ),
        (
            &generators,
            "kind = \"conn-cost\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n".to_owned(),
            "limits.toml:1:1: `generators` spreads the client fleet of `load` over agents; scenario `conn-cost`",
        ),
        (
            &generators,
            load_on("\"tcp\"", "source_addresses = 4\n"),
            "limits.toml:7:1: `source_addresses` binds loopback source addresses of this machine",
        ),
    ] {
        let plan = dir.path().join("limits.toml");
        std::fs::write(&plan, format!("{top}\nname = \"limits\"\n[[scenario]]\n{scenario}")).unwrap();
        let (output, _) = run_bounded(&["run", "--dry-run", plan.to_str().unwrap()], Duration::from_secs(20));
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected) && stderr.lines().count() == 1, "{stderr}");
    }
}

/// One namespace test at a time: every link uses the same two addresses.
static LINKS: Mutex<()> = Mutex::new(());

/// A namespace joined to this one by a veth pair, or the reason there cannot be one here.
fn link() -> Option<Link> {
    match Link::create(LinkSpec {
        delay: Duration::ZERO,
        rate_mbit: None,
    }) {
        Ok(link) => Some(link),
        Err(reason) => {
            eprintln!("skipped: no network namespace here: {reason}");
            None
        }
    }
}

/// The namespace tests' lock, a link, and an agent listening inside the namespace; `None`
/// (the reason printed) where no namespace can be made. Dropped in reverse: agent, link, lock.
fn namespaced_agent() -> Option<(std::sync::MutexGuard<'static, ()>, Link, Agent)> {
    let one = LINKS.lock().unwrap_or_else(|e| e.into_inner());
    let link = link()?;
    let agent = Agent::start(&PEER_ADDRESS.to_string(), Some(link.namespace()), &[]);
    Some((one, link, agent))
}

#[test]
fn an_agent_in_another_namespace_serves_pingpong_stream_rpc_and_load() {
    let Some((_one, _link, agent)) = namespaced_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (out, run) = run_ok(
        dir.path(),
        &format!(
            "name = \"remote\"\nrepetitions = 2\nwarmup = \"50ms\"\nduration = \"200ms\"\ncores = [0, 1]\n\
             peer = \"{}\"\n\
             [[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n\
             [[scenario]]\nkind = \"stream\"\ntransports = [\"tcp\"]\nmessage_bytes = 65536\ntotal_bytes = \"16MiB\"\n\
             [[scenario]]\nkind = \"rpc\"\ntransports = [\"tcp\"]\nmessage_bytes = 1024\nwindow = 8\n\
             [[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\nconnections = 20\n\
             rate_per_connection_hz = 50\n",
            agent.address
        ),
        &[&agent],
    );
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        assert_eq!(case["status"], "ok", "{case}");
        assert!(case["id"].as_str().unwrap().contains("/remote/"), "{}", case["id"]);
        assert_eq!(case["trials"].as_array().unwrap().len(), 2);
    }
    let agents = run["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents[0]["address"], agent.address.to_string());
    assert_eq!(agents[0]["role"], "peer");
    assert_eq!(agents[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(agents[0]["environment"]["cores"].as_u64().unwrap() >= 1);
    assert!(!agents[0]["environment"]["kernel"].as_str().unwrap().is_empty());
    assert_eq!(agents[0]["case_ids"].as_array().unwrap().len(), 4);
    // Each trial's peer ran on the agent (its log names every launch).
    assert!(agent.logged("peer pid"), "{}", agent.log());
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.log().matches("peer pid").count() < 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(agent.log().matches("peer pid").count(), 8, "{}", agent.log());
    // The report names the agent's machine too.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains(&agent.address.to_string()), "{report}");
}

/// What [`run_and_kill`] saw: the run's exit code and stderr, its record, and the killed
/// agent's peer.
struct Killed {
    code: Option<i32>,
    stderr: String,
    record: serde_json::Value,
    peer_pid: u32,
}

/// Runs `plan` into `dir/out`, kills `agent` 0.5 s after its first launch, and checks that the
/// tcp case failed within 30 s of the kill (seen in the staged record) and that the run ended.
fn run_and_kill(plan: &Path, dir: &Path, agent: &mut Agent) -> Killed {
    let out = dir.join("out");
    let started = Instant::now();
    let mut run = Command::new(bin())
        .args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the remote trial to start, then kill the agent.
    let peer_pid = launched_peer(agent, started);
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    let _ = agent.child.kill();
    let _ = agent.child.wait();
    // The record so far is saved after every trial, in the staging folder beside `out`.
    let staged = dir.join(format!(".out.staging-{}", run.id())).join("run.json");
    let remote_failed = || {
        std::fs::read_to_string(&staged)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|record| {
                record["cases"]
                    .as_array()
                    .is_some_and(|cases| cases.iter().any(|c| c["transport"] == "tcp" && c["status"] == "failed"))
            })
    };
    let mut seen_failed = false;
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        seen_failed = seen_failed || remote_failed();
        // The case fails within seconds (about one here); the rest of the run (the other case,
        // the report's charts) may take longer on a loaded machine.
        assert!(
            seen_failed || killed_at.elapsed() < Duration::from_secs(30),
            "the remote case did not fail within 30 s of the agent's death"
        );
        if killed_at.elapsed() > Duration::from_secs(180) {
            let _ = run.kill();
            panic!("the run did not end within 180 s of the agent's death");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    let _ = run.stderr.take().unwrap().read_to_string(&mut stderr);
    Killed {
        code: status.code(),
        stderr,
        record: record(&out),
        peer_pid,
    }
}

/// Runs `scenario` (a remote tcp case on `agent`, 60 s long) and a local null case after it,
/// kills `agent` during the first ([`run_and_kill`]), and checks the outcome: exit 1, the tcp
/// case failed naming the agent, the null case ok, and the killed agent's peer gone with it.
fn a_killed_agent_fails_its_case_and_the_run_goes_on(scenario: &str, agent: &mut Agent) {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("killed.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"killed\"\nrepetitions = 1\nwarmup = \"50ms\"\ncores = [0, 1]\n{scenario}\
             [[scenario]]\nkind = \"pingpong\"\ntransports = [\"null\"]\nmessage_bytes = 64\nduration = \"200ms\"\n"
        ),
    )
    .unwrap();
    let address = agent.address;
    let killed = run_and_kill(&plan, dir.path(), agent);
    assert_eq!(killed.code, Some(1), "{}", killed.stderr);
    let cases = killed.record["cases"].as_array().unwrap();
    let remote = cases.iter().find(|c| c["transport"] == "tcp").unwrap();
    let local = cases.iter().find(|c| c["transport"] == "null").unwrap();
    assert_eq!(remote["status"], "failed", "{remote}");
    assert!(
        remote["reason"].as_str().unwrap().contains(&address.to_string()),
        "{remote}"
    );
    assert_eq!(local["status"], "ok", "{local}");
    // The agent's peer died with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(killed.peer_pid) {
        assert!(
            Instant::now() < deadline,
            "the agent's peer {} outlived it",
            killed.peer_pid
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most a minute from `started`) for the agent to log a launch; its peer's pid.
fn launched_peer(agent: &Agent, started: Instant) -> u32 {
    loop {
        let log = agent.log();
        if let Some(pid) = log
            .lines()
            .find_map(|l| l.split("peer pid ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|pid| pid.parse::<u32>().ok())
        {
            return pid;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no launch: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True while process `pid` runs (a zombie that waits for init to reap it counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with(['Z', 'X'])))
        .unwrap_or(false)
}

#[test]
fn a_machine_that_vanishes_ends_the_trial_on_both_sides_within_seconds() {
    let Some((_one, link, agent)) = namespaced_agent() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("vanish.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"vanish\"\nrepetitions = 1\nwarmup = \"50ms\"\ncores = [0, 1]\n[[scenario]]\nkind = \"pingpong\"\n\
             transports = [\"tcp\"]\nmessage_bytes = 64\nduration = \"60s\"\npeer = \"{}\"\n",
            agent.address
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut run = Command::new(bin())
        .args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let peer_pid = launched_peer(&agent, started);
    // Cut the agent's side of the link: no FIN, no RST, nothing arrives any more.
    let links = Command::new("ip")
        .args(["-n", link.namespace(), "-o", "link", "show"])
        .output()
        .unwrap();
    for name in String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .filter(|name| name != "lo")
    {
        let down = Command::new("ip")
            .args(["-n", link.namespace(), "link", "set", &name, "down"])
            .status()
            .unwrap();
        assert!(down.success(), "ip link set {name} down");
    }
    let cut = Instant::now();
    // Keepalive (3 probes a second apart after a second of silence) or the user timeout (5 s)
    // declares the runner dead; 20 s leaves a loaded machine room.
    while alive(peer_pid) {
        assert!(
            cut.elapsed() < Duration::from_secs(20),
            "the agent's peer {peer_pid} still runs {:?} after its runner vanished: {}",
            cut.elapsed(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The measuring side's channel gives up as well (TCP_USER_TIMEOUT on connections off
    // loopback): the case fails long before its 60 s and the run ends.
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if cut.elapsed() > Duration::from_secs(40) {
            let _ = run.kill();
            panic!(
                "the run still waits {:?} after the agent's machine vanished",
                cut.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1), "the remote case failed");
    let case = &record(&out)["cases"][0];
    assert_eq!(case["status"], "failed", "{case}");
    assert!(
        case["reason"].as_str().unwrap().contains(&agent.address.to_string()),
        "{case}"
    );
}

#[test]
fn an_agent_killed_mid_trial_fails_its_case_within_seconds_and_the_run_goes_on() {
    let Some((_one, _link, mut agent)) = namespaced_agent() else {
        return;
    };
    let plan = format!(
        "[[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\nduration = \"60s\"\n\
         peer = \"{}\"\n",
        agent.address
    );
    a_killed_agent_fails_its_case_and_the_run_goes_on(&plan, &mut agent);
}

/// The namespace tests' lock, two namespaces behind veth pairs of their own (198.18.0.4/30 and
/// 198.18.0.8/30) with an agent in each, and each namespace routed to every host address of
/// 198.18.0.0/24 through its own link (so both reach an agent on this side's first host end);
/// `None` (the reason printed) where no namespace can be made.
fn generator_agents() -> Option<(std::sync::MutexGuard<'static, ()>, Vec<Link>, Vec<Agent>)> {
    let one = LINKS.lock().unwrap_or_else(|e| e.into_inner());
    let mut links = Vec::new();
    for slot in 1..=2 {
        match Link::create_on(
            LinkSpec {
                delay: Duration::ZERO,
                rate_mbit: None,
            },
            slot,
        ) {
            Ok(link) => links.push(link),
            Err(reason) => {
                eprintln!("skipped: no network namespace here: {reason}");
                return None;
            }
        }
    }
    for link in &links {
        let via = link.host_address().to_string();
        let output = run_command(
            "ip",
            &["-n", link.namespace(), "route", "add", "198.18.0.0/24", "via", &via],
        );
        assert!(output.status.success(), "{}", text(&output));
    }
    let agents = links
        .iter()
        .map(|link| Agent::start(&link.peer_address().to_string(), Some(link.namespace()), &[]))
        .collect();
    Some((one, links, agents))
}

/// Runs `program args` to completion (an `ip` command, which returns at once).
fn run_command(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

#[test]
fn two_generator_agents_share_a_load_fleet_and_their_histograms_merge() {
    let Some((_one, links, agents)) = generator_agents() else {
        return;
    };
    // A third agent on this side, on the first link's host end, serves the second case.
    let peer = Agent::start(&links[0].host_address().to_string(), None, &[]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (agents[0].address, agents[1].address);
    let (_, run) = run_ok(
        dir.path(),
        &format!(
            "name = \"fleet\"\nrepetitions = 1\nwarmup = \"100ms\"\nduration = \"1s\"\ncores = [0, 1]\n\
             generators = [\"{a}\", \"{b}\"]\n\
             [[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\nconnections = 20\n\
             rate_per_connection_hz = 50\n\
             [[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\nconnections = 10\n\
             rate_per_connection_hz = 40\npeer = \"{}\"\n",
            peer.address
        ),
        &[&agents[0], &agents[1], &peer],
    );
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        assert_eq!(case["status"], "ok", "{case}");
        assert!(case["id"].as_str().unwrap().contains("/agents2/"), "{}", case["id"]);
        assert_eq!(
            case["extra"]["generators"],
            serde_json::json!([a.to_string(), b.to_string()])
        );
        let trial = &case["trials"][0];
        let figure = |key: &str| {
            trial["extra"][key]
                .as_f64()
                .unwrap_or_else(|| panic!("no {key}: {trial}"))
        };
        let share = case["connections"].as_f64().unwrap() / 2.0 * case["rate_per_connection_hz"].as_f64().unwrap();
        let mut counts = 0.0;
        for k in 0..2 {
            let achieved = figure(&format!("agent{k}_achieved_messages_per_s"));
            // Open loop: each agent sends its share's schedule; 10x margins for a loaded machine.
            assert!(
                achieved > share / 10.0 && achieved < share * 2.0,
                "agent {k}: {achieved} of {share}/s"
            );
            assert_eq!(
                figure(&format!("agent{k}_connections")),
                case["connections"].as_f64().unwrap() / 2.0
            );
            counts += figure(&format!("agent{k}_messages"));
        }
        assert!(counts > 0.0);
        assert_eq!(trial["messages"].as_f64().unwrap(), counts, "{trial}");
        let merged = ipcbench_record::stats::decode_histogram(trial["histogram_v2"].as_str().unwrap()).unwrap();
        assert_eq!(
            merged.len() as f64,
            counts,
            "the merged histogram holds every agent's replies"
        );
    }
    let listed = run["agents"].as_array().unwrap();
    for (address, role, n_cases) in [(a, "generator", 2), (b, "generator", 2), (peer.address, "peer", 1)] {
        let entry = listed
            .iter()
            .find(|e| e["address"] == address.to_string() && e["role"] == role)
            .unwrap_or_else(|| panic!("{address} as {role} in {listed:?}"));
        assert_eq!(entry["version"], env!("CARGO_PKG_VERSION"));
        assert!(entry["environment"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(entry["case_ids"].as_array().unwrap().len(), n_cases);
    }
    assert_eq!(listed.len(), 3, "{listed:?}");
    // Each agent ran one generator per case.
    for agent in &agents {
        assert!(agent.logged("peer pid"), "{}", agent.log());
    }
}

#[test]
fn a_generator_agent_killed_mid_trial_fails_its_case_within_seconds_and_the_run_goes_on() {
    let Some((_one, _links, mut agents)) = generator_agents() else {
        return;
    };
    let plan = format!(
        "[[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\nconnections = 4\n\
         rate_per_connection_hz = 10\nduration = \"60s\"\ngenerators = [\"{}\", \"{}\"]\n",
        agents[0].address, agents[1].address
    );
    a_killed_agent_fails_its_case_and_the_run_goes_on(&plan, &mut agents[0]);
}
