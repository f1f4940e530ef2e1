//! A link with added delay (and optionally a rate limit) for `rpc`'s `delay_ms` and
//! `rate_mbit`: the peer runs in its own network namespace, joined to the host by a veth pair,
//! with netem on both ends. ipcbench sets the link up before the trial and tears it down after,
//! even when the trial fails ([`Link`]'s `Drop`).
//!
//! On a kernel without netem (`CONFIG_NET_SCH_NETEM` unset, as on this project's own machines),
//! the link is a pair of TUN devices with the delay applied by forwarding threads in user space
//! instead ([`crate::delay_line`]; same addresses, same one-way semantics). Which one a case ran
//! over is recorded per trial (`extra.link_user_space`: 0 for netem, 1 for the user-space line)
//! and the user-space line is flagged on the case.
//!
//! ```text
//!  host namespace                               namespace ipcb-<pid>-<n>
//!  client (listens on 198.18.0.1)               peer (ip netns exec ..., dials 198.18.0.1)
//!      ib<pid>-<n>h 198.18.0.1/30  <== veth ==>  ib<pid>-<n>n 198.18.0.2/30
//!      netem delay D [rate R] (client -> peer)   netem delay D [rate R] (peer -> client)
//! ```
//!
//! - **`delay_ms` is one-way.** netem delays the packets leaving each end, so a round trip
//!   crosses it twice: the round-trip floor is 2 x `delay_ms`, and a window of W requests moves
//!   at most W x (request + reply) bytes per 2 x `delay_ms` (see
//!   `ipcbench_record::finish`).
//! - **`rate_mbit` is per direction**, applied by the same netem qdiscs.
//! - netem's queue is raised to [`NETEM_LIMIT_PACKETS`] packets (default 1000), so a large
//!   window at a long delay is not cut short by drops in the emulator itself.
//! - Addresses come from 198.18.0.0/15 (RFC 2544, reserved for benchmarking) and exist only on
//!   the veth pair: all traffic stays on this machine.
//! - A delay of 0 with no rate still runs through the namespace and the veth pair (so a 0 ms
//!   case is comparable with the delayed ones) but adds no qdisc.
//! - Names are unique per process and link (`ipcb-<pid>-<n>`); namespaces left behind by a
//!   process that no longer exists (killed before its `Drop` ran) are removed when the next
//!   link is made.
//!
//! Where the link cannot be made (not root, no `ip`/`tc`, no network namespaces, neither netem
//! nor a TUN device), the case is reported unsupported with the reason: it never runs without
//! the delay it asked for. Only `tcp` crosses a network; other transports with a delay are
//! unsupported too.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use crate::delay_line::{self, DelayLine};
use crate::plan::{Case, TransportKind, TransportSettings};
use crate::session::{PeerCommand, TrialError, TrialOutput};

/// The host end's address: the client listens here.
pub const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The namespace end's address: the peer's side of the link.
pub const PEER_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The prefix length of the two-address link network 198.18.0.0/30.
const PREFIX_LEN: u8 = 30;
/// netem's queue length in packets (its default of 1000 drops packets of a large window).
pub const NETEM_LIMIT_PACKETS: u32 = 100_000;
/// How long one `ip` or `tc` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of every namespace ipcbench makes.
const NAMESPACE_PREFIX: &str = "ipcb-";

/// What the link should do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    /// Added one-way delay.
    pub delay: Duration,
    /// Rate limit per direction, Mbit/s.
    pub rate_mbit: Option<f64>,
}

impl LinkSpec {
    /// The link `case` asks for, if any (`delay_ms` or `rate_mbit` set).
    pub fn of(case: &Case) -> Option<LinkSpec> {
        if case.delay_ms.is_none() && case.rate_mbit.is_none() {
            return None;
        }
        Some(LinkSpec {
            delay: Duration::from_secs_f64(case.delay_ms.unwrap_or(0.0).max(0.0) / 1e3),
            rate_mbit: case.rate_mbit,
        })
    }

    /// The netem arguments after `netem`, or `None` when the link needs no qdisc.
    fn netem_args(&self) -> Option<Vec<String>> {
        if self.delay.is_zero() && self.rate_mbit.is_none() {
            return None;
        }
        let mut args = vec![
            "delay".to_owned(),
            format!("{}us", self.delay.as_micros()),
            "limit".to_owned(),
            NETEM_LIMIT_PACKETS.to_string(),
        ];
        if let Some(rate) = self.rate_mbit {
            args.push("rate".to_owned());
            args.push(format!("{}kbit", (rate * 1000.0).round() as u64));
        }
        Some(args)
    }
}

/// How a link carries its delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMethod {
    /// A veth pair without a qdisc (no delay and no rate asked for).
    Plain,
    /// A veth pair with netem on both ends.
    Netem,
    /// Two TUN devices with forwarding threads in user space ([`crate::delay_line`]).
    UserSpace,
}

/// A namespace joined to the host by a link with the asked-for delay; removed when dropped.
#[derive(Debug)]
pub struct Link {
    namespace: String,
    host_if: String,
    method: LinkMethod,
    host_address: Ipv4Addr,
    peer_address: Ipv4Addr,
    // Dropped after `Drop::drop` removed the devices, which ends the threads' reads.
    delay_line: Option<DelayLine>,
}

impl Link {
    /// Makes the namespace, the veth pair, the addresses and the qdiscs.
    ///
    /// # Errors
    /// Why the link cannot be made here (for the case's `unsupported` reason); anything made
    /// before the failure is removed again.
    pub fn create(spec: LinkSpec) -> Result<Link, String> {
        Link::create_on(spec, 0)
    }

    /// [`Link::create`] on the `slot`-th /30 of 198.18.0.0/24 (slot 0 is [`HOST_ADDRESS`] and
    /// [`PEER_ADDRESS`]; slot k is 198.18.0.4k+1 and .4k+2), so several links can exist at once
    /// (the generator-agent tests put an agent behind each).
    ///
    /// # Errors
    /// As [`Link::create`]; a slot above 63 does not fit the /24.
    pub fn create_on(spec: LinkSpec, slot: u8) -> Result<Link, String> {
        if slot > 63 {
            return Err(format!("link slot {slot} is outside 198.18.0.0/24 (0..=63)"));
        }
        let offset = 4 * u32::from(slot);
        let host_address = Ipv4Addr::from(u32::from(HOST_ADDRESS) + offset);
        let peer_address = Ipv4Addr::from(u32::from(PEER_ADDRESS) + offset);
        if !rustix::process::geteuid().is_root() {
            return Err(format!(
                "a delayed link needs root to create a network namespace (running as uid {})",
                rustix::process::geteuid().as_raw()
            ));
        }
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(remove_stale_namespaces);
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // Relaxed: the counter only hands out distinct numbers; it orders nothing.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let namespace = format!("{NAMESPACE_PREFIX}{pid}-{n}");
        // Interface names have at most 15 characters: hex keeps these at 14 or fewer.
        let host_if = format!("ib{pid:x}-{n:x}h");
        let peer_if = format!("ib{pid:x}-{n:x}n");
        let method = match spec.netem_args() {
            None => LinkMethod::Plain,
            Some(_) if netem_available() => LinkMethod::Netem,
            Some(_) => LinkMethod::UserSpace,
        };
        run(&["ip", "netns", "add", &namespace])?;
        // From here on, dropping `link` removes the namespace (and with it the veth pair).
        let mut link = Link {
            namespace,
            host_if,
            method,
            host_address,
            peer_address,
            delay_line: None,
        };
        if method == LinkMethod::UserSpace {
            link.delay_line = Some(DelayLine::start(&link.host_if, &peer_if, spec.delay, spec.rate_mbit)?);
            link.configure_tun(&peer_if)?;
            return Ok(link);
        }
        let ns = link.namespace.as_str();
        let host_address = format!("{}/{PREFIX_LEN}", link.host_address);
        let peer_address = format!("{}/{PREFIX_LEN}", link.peer_address);
        run(&[
            "ip",
            "link",
            "add",
            &link.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer_if,
            "netns",
            ns,
        ])?;
        run(&["ip", "addr", "add", &host_address, "dev", &link.host_if])?;
        run(&["ip", "link", "set", &link.host_if, "up"])?;
        run(&["ip", "-n", ns, "addr", "add", &peer_address, "dev", &peer_if])?;
        run(&["ip", "-n", ns, "link", "set", &peer_if, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        if let Some(netem) = spec.netem_args().filter(|_| method == LinkMethod::Netem) {
            let netem: Vec<&str> = netem.iter().map(String::as_str).collect();
            for (prefix, device) in [
                (vec!["tc"], link.host_if.as_str()),
                (vec!["tc", "-n", ns], peer_if.as_str()),
            ] {
                let mut args = prefix;
                args.extend(["qdisc", "add", "dev", device, "root", "netem"]);
                args.extend(&netem);
                run(&args).map_err(|e| {
                    if e.contains("qdisc kind is unknown") {
                        format!("{e} (this kernel has no netem qdisc, CONFIG_NET_SCH_NETEM)")
                    } else {
                        e
                    }
                })?;
            }
        }
        Ok(link)
    }

    /// Moves the peer's TUN device into the namespace and gives both ends their addresses.
    fn configure_tun(&self, peer_if: &str) -> Result<(), String> {
        let ns = self.namespace.as_str();
        let mtu = delay_line::MTU_BYTES.to_string();
        let (host, peer) = (self.host_address.to_string(), self.peer_address.to_string());
        run(&["ip", "link", "set", peer_if, "netns", ns])?;
        run(&["ip", "addr", "add", &host, "peer", &peer, "dev", &self.host_if])?;
        run(&["ip", "link", "set", &self.host_if, "mtu", &mtu, "up"])?;
        run(&["ip", "-n", ns, "addr", "add", &peer, "peer", &host, "dev", peer_if])?;
        run(&["ip", "-n", ns, "link", "set", peer_if, "mtu", &mtu, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The host end's address (the runner's side).
    pub fn host_address(&self) -> Ipv4Addr {
        self.host_address
    }

    /// The namespace end's address.
    pub fn peer_address(&self) -> Ipv4Addr {
        self.peer_address
    }

    /// How this link carries its delay.
    pub fn method(&self) -> LinkMethod {
        self.method
    }

    /// `command` run inside the namespace (`ip netns exec <ns> <command>`).
    pub fn wrap(&self, command: &PeerCommand) -> PeerCommand {
        let mut args = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.namespace.clone(),
            command.program.display().to_string(),
        ];
        args.extend(command.args.iter().cloned());
        PeerCommand {
            program: "ip".into(),
            args,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth end inside it, and with it the pair; the
        // explicit delete of the host end covers a namespace that refuses to go.
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["ip", "netns", "del", &self.namespace]);
    }
}

/// Runs `case` through `run`, over a delayed link when the case asks for one: then the case's
/// tcp listener moves to the host end of the link and the peer command into the namespace.
///
/// # Errors
/// [`TrialError::Unsupported`] when the link cannot be made or the transport cannot cross it;
/// otherwise whatever `run` returns.
pub fn with_link(
    case: &Case,
    peer_command: &PeerCommand,
    run: impl FnOnce(&Case, &PeerCommand) -> Result<TrialOutput, TrialError>,
) -> Result<TrialOutput, TrialError> {
    let Some(spec) = LinkSpec::of(case) else {
        return run(case, peer_command);
    };
    let kind = case.transport.kind();
    if kind != TransportKind::Tcp {
        return Err(TrialError::Unsupported(format!(
            "delay_ms and rate_mbit put the peer behind a network link in its own namespace, which only tcp \
             crosses; `{kind}` cannot"
        )));
    }
    let link = Link::create(spec).map_err(TrialError::Unsupported)?;
    let mut linked = case.clone();
    if let TransportSettings::Tcp { listen_ip, .. } = &mut linked.transport {
        *listen_ip = Some(IpAddr::V4(HOST_ADDRESS));
    }
    let mut output = run(&linked, &link.wrap(peer_command))?;
    let method = link.method();
    drop(link);
    let extra = &mut output.trial.extra;
    extra.insert("link_one_way_delay_ms".into(), spec.delay.as_secs_f64() * 1e3);
    let user_space = if method == LinkMethod::UserSpace { 1.0 } else { 0.0 };
    extra.insert("link_user_space".into(), user_space);
    if let Some(rate) = spec.rate_mbit {
        extra.insert("link_rate_mbit".into(), rate);
    }
    Ok(output)
}

/// Runs one `ip`/`tc` command with a timeout; the error names the command and its stderr.
fn run(args: &[&str]) -> Result<(), String> {
    let shown = args.join(" ");
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("`{}` is not installed (iproute2 provides `ip` and `tc`)", args[0])
            }
            _ => format!("cannot run `{shown}`: {e}"),
        })?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}"));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let stderr = stderr.trim().replace('\n', " ");
    Err(if stderr.is_empty() {
        format!("`{shown}` failed with {status}")
    } else {
        format!("`{shown}` failed: {stderr}")
    })
}

/// True when this kernel has netem: tried once per process on the loopback device of a
/// namespace made for the purpose (never on one of the host's own devices).
fn netem_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let namespace = format!("{NAMESPACE_PREFIX}{}-probe", std::process::id());
        if run(&["ip", "netns", "add", &namespace]).is_err() {
            return false;
        }
        let available = run(&[
            "tc", "-n", &namespace, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ])
        .is_ok();
        let _ = run(&["ip", "netns", "del", &namespace]);
        available
    })
}

/// Removes `ipcb-<pid>-<n>` namespaces whose process no longer exists.
/// Removes every namespace ipcbench made whose owning process is gone (a run killed with
/// `kill -9`); called before the first link of a run and by the CLI's clean-up after a dead run.
pub fn remove_stale_namespaces() {
    let Ok(output) = Command::new("ip")
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    for name in String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        if let Some(pid) = owner_pid(name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// The pid in a namespace name ipcbench made (`ipcb-<pid>-<n>`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let (pid, n) = rest.split_once('-')?;
    if n != "probe" {
        n.parse::<u64>().ok()?;
    }
    pid.parse().ok()
}

/// Whether a link with `spec` can be made here: `Ok` after making and removing one, or the
/// reason it cannot.
///
/// # Errors
/// The reason, as [`Link::create`] gives it.
pub fn probe(spec: LinkSpec) -> Result<(), String> {
    Link::create(spec).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_carry_their_owner() {
        assert_eq!(owner_pid("ipcb-1234-0"), Some(1234));
        assert_eq!(owner_pid("ipcb-1234-x"), None);
        assert_eq!(owner_pid("other-1234-0"), None);
        assert_eq!(owner_pid("ipcb-"), None);
    }

    #[test]
    fn netem_gets_delay_limit_and_rate() {
        let spec = LinkSpec {
            delay: Duration::from_micros(12_500),
            rate_mbit: Some(100.0),
        };
        assert_eq!(
            spec.netem_args().unwrap(),
            ["delay", "12500us", "limit", "100000", "rate", "100000kbit"]
        );
        let none = LinkSpec {
            delay: Duration::ZERO,
            rate_mbit: None,
        };
        assert_eq!(none.netem_args(), None);
    }

    #[test]
    fn peer_command_runs_inside_the_namespace() {
        let link = Link {
            namespace: "ipcb-1-0".into(),
            host_if: "never-created".into(),
            method: LinkMethod::Plain,
            host_address: HOST_ADDRESS,
            peer_address: PEER_ADDRESS,
            delay_line: None,
        };
        let wrapped = link.wrap(&PeerCommand {
            program: "/bin/ipcbench".into(),
            args: vec!["peer".into()],
        });
        // Forget the link: it was never made, so there is nothing to remove.
        std::mem::forget(link);
        assert_eq!(wrapped.program, std::path::PathBuf::from("ip"));
        assert_eq!(wrapped.args, ["netns", "exec", "ipcb-1-0", "/bin/ipcbench", "peer"]);
    }

    fn own_namespaces() -> Vec<String> {
        let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
            return Vec::new();
        };
        let own = format!("{NAMESPACE_PREFIX}{}-", std::process::id());
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| name.starts_with(&own))
            .map(str::to_owned)
            .collect()
    }

    /// One test makes every link of this process, so the namespace checks do not race.
    #[test]
    fn links_are_made_and_removed_or_refused_with_a_reason() {
        for delay_ms in [0, 1] {
            let spec = LinkSpec {
                delay: Duration::from_millis(delay_ms),
                rate_mbit: None,
            };
            match Link::create(spec) {
                Ok(link) => {
                    assert_eq!(own_namespaces(), [link.namespace().to_owned()]);
                    let expected: &[LinkMethod] = if delay_ms == 0 {
                        &[LinkMethod::Plain]
                    } else {
                        &[LinkMethod::Netem, LinkMethod::UserSpace]
                    };
                    assert!(expected.contains(&link.method()), "{:?}", link.method());
                    drop(link);
                }
                Err(reason) => eprintln!("skipped: no {delay_ms} ms link here: {reason}"),
            }
            // Made or refused half-way, nothing is left behind.
            assert_eq!(own_namespaces(), Vec::<String>::new(), "{delay_ms} ms");
        }
    }
}
