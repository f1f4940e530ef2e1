//! The identity of a case: the key by which runs are compared, written and parsed here only.
//!
//! A case id reads `scenario/transport[options]/size[/dimensions]/placement`, for example
//! `pingpong/tcp[nagle,sndbuf=1024]/64B:12B/c0s1` or `load/uds/64B/c1000/r5Hz/c0s1`:
//!
//! - `transport` is `front->back` for a relayed case; the options are the ones that differ
//!   from the transport's defaults, the back transport's prefixed with `back.`;
//! - the size is the request size, with `:<reply>B` when the reply differs;
//! - the dimensions, each present only when the case has it and always in this order: `w<window>`,
//!   `d<delay>ms`, `c<connections>`, `r<rate>Hz`, `text`, then any further scenario dimensions;
//! - the placement is last: `c<client>s<server>`, or `c<client>` when there is no peer.
//!
//! [`CaseId`]'s `Display` writes that string and its `FromStr` reads it back, so every part of
//! the workspace that needs a piece of an id (the gate's match key, a chart's options label)
//! asks the typed value instead of splitting strings of its own.

use std::fmt;
use std::str::FromStr;

/// A parsed case id. `Display` and `FromStr` are inverse for every id `Display` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseId {
    /// `pingpong`, `stream`, `rpc`, `load`, `proxy`, `conn-cost`, ...
    pub scenario: String,
    /// The transport (the front transport of a relayed case).
    pub transport: String,
    /// The back transport of a relayed case.
    pub back_transport: Option<String>,
    /// The options that differ from the defaults (`nagle`, `sndbuf=1024`, `back.wait=hybrid`).
    pub options: Vec<String>,
    /// Request size.
    pub message_bytes: u64,
    /// Reply size, present only when it differs from the request size.
    pub reply_bytes: Option<u64>,
    /// Requests in flight (rpc).
    pub window: Option<u64>,
    /// Added one-way delay (rpc).
    pub delay_ms: Option<f64>,
    /// Concurrent connections (load, conn-cost).
    pub connections: Option<u64>,
    /// Target rate per connection (load).
    pub rate_per_connection_hz: Option<f64>,
    /// The relay converts to text framing (proxy).
    pub text: bool,
    /// Further dimensions of newer scenarios, each one path segment, in the order written.
    pub dimensions: Vec<String>,
    /// The client's core.
    pub client_core: usize,
    /// The server's core; `None` when there is no peer.
    pub server_core: Option<usize>,
}

/// A string that is not a case id; says which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not a case id: {problem}")]
pub struct CaseIdError {
    /// The string given.
    pub id: String,
    /// What is wrong with it.
    pub problem: String,
}

impl CaseId {
    /// The options label as the id spells it (`nagle,sndbuf=1024`), `None` without options.
    pub fn options_label(&self) -> Option<String> {
        (!self.options.is_empty()).then(|| self.options.join(","))
    }

    /// The injected delay of the `null` or `inproc` baseline (`delay=<n>ns`), if any.
    pub fn injected_delay_ns(&self) -> Option<u64> {
        self.options.iter().find_map(|o| injected_delay(o))
    }

    /// The id without an injected `delay=<n>ns` option: the key by which the gate matches a
    /// slowed run to its baseline.
    pub fn without_injected_delay(&self) -> CaseId {
        let mut id = self.clone();
        id.options.retain(|o| injected_delay(o).is_none());
        id
    }
}

/// `delay=300ns` → 300.
fn injected_delay(option: &str) -> Option<u64> {
    let digits = option.strip_prefix("delay=")?.strip_suffix("ns")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scenario, self.transport)?;
        if let Some(back) = &self.back_transport {
            write!(f, "->{back}")?;
        }
        if !self.options.is_empty() {
            write!(f, "[{}]", self.options.join(","))?;
        }
        write!(f, "/{}B", self.message_bytes)?;
        if let Some(reply) = self.reply_bytes {
            write!(f, ":{reply}B")?;
        }
        if let Some(w) = self.window {
            write!(f, "/w{w}")?;
        }
        if let Some(d) = self.delay_ms {
            write!(f, "/d{d}ms")?;
        }
        if let Some(c) = self.connections {
            write!(f, "/c{c}")?;
        }
        if let Some(r) = self.rate_per_connection_hz {
            write!(f, "/r{r}Hz")?;
        }
        if self.text {
            write!(f, "/text")?;
        }
        for dimension in &self.dimensions {
            write!(f, "/{dimension}")?;
        }
        match self.server_core {
            Some(server) => write!(f, "/c{}s{server}", self.client_core),
            None => write!(f, "/c{}", self.client_core),
        }
    }
}

impl FromStr for CaseId {
    type Err = CaseIdError;

    fn from_str(id: &str) -> Result<CaseId, CaseIdError> {
        let fail = |problem: &str| CaseIdError {
            id: id.to_owned(),
            problem: problem.to_owned(),
        };
        let (scenario, rest) = id.split_once('/').ok_or_else(|| fail("no `/` after the scenario"))?;
        // The options may hold anything but `]`, so the transport part ends at the bracket.
        let (transport_part, options, rest) = match (rest.find('['), rest.find('/')) {
            (Some(open), Some(slash)) if open < slash => {
                let close = rest[open..]
                    .find(']')
                    .map(|i| open + i)
                    .ok_or_else(|| fail("`[` without `]`"))?;
                let options: Vec<String> = rest[open + 1..close].split(',').map(str::to_owned).collect();
                let after = rest[close + 1..]
                    .strip_prefix('/')
                    .ok_or_else(|| fail("no `/` after the options"))?;
                (&rest[..open], options, after)
            }
            (_, Some(slash)) => (&rest[..slash], Vec::new(), &rest[slash + 1..]),
            (_, None) => return Err(fail("no size after the transport")),
        };
        let (transport, back_transport) = match transport_part.split_once("->") {
            Some((front, back)) => (front.to_owned(), Some(back.to_owned())),
            None => (transport_part.to_owned(), None),
        };
        let mut segments: Vec<&str> = rest.split('/').collect();
        let placement = segments
            .pop()
            .filter(|_| !segments.is_empty())
            .ok_or_else(|| fail("no placement"))?;
        let (client_core, server_core) = parse_placement(placement).ok_or_else(|| fail("bad placement"))?;
        let mut segments = segments.into_iter();
        let size = segments.next().ok_or_else(|| fail("no size"))?;
        let (message, reply) = match size.split_once(':') {
            Some((m, r)) => (m, Some(r)),
            None => (size, None),
        };
        let bytes = |text: &str| text.strip_suffix('B').and_then(|n| n.parse::<u64>().ok());
        let message_bytes = bytes(message).ok_or_else(|| fail("bad size"))?;
        let reply_bytes = match reply {
            Some(r) => Some(bytes(r).ok_or_else(|| fail("bad reply size"))?),
            None => None,
        };
        let mut case = CaseId {
            scenario: scenario.to_owned(),
            transport,
            back_transport,
            options: if options == [""] { Vec::new() } else { options },
            message_bytes,
            reply_bytes,
            window: None,
            delay_ms: None,
            connections: None,
            rate_per_connection_hz: None,
            text: false,
            dimensions: Vec::new(),
            client_core,
            server_core,
        };
        // Each known dimension once, in its order; anything after them is a further dimension.
        let mut stage = 0;
        for segment in segments {
            let known = [
                segment
                    .strip_prefix('w')
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(|w| (1, Dim::Window(w))),
                segment
                    .strip_prefix('d')
                    .and_then(|n| n.strip_suffix("ms"))
                    .and_then(|n| n.parse::<f64>().ok())
                    .map(|d| (2, Dim::Delay(d))),
                segment
                    .strip_prefix('c')
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(|c| (3, Dim::Connections(c))),
                segment
                    .strip_prefix('r')
                    .and_then(|n| n.strip_suffix("Hz"))
                    .and_then(|n| n.parse::<f64>().ok())
                    .map(|r| (4, Dim::Rate(r))),
                (segment == "text").then_some((5, Dim::Text)),
            ]
            .into_iter()
            .flatten()
            .find(|(order, _)| *order > stage);
            match known {
                Some((order, dim)) if case.dimensions.is_empty() => {
                    stage = order;
                    match dim {
                        Dim::Window(w) => case.window = Some(w),
                        Dim::Delay(d) => case.delay_ms = Some(d),
                        Dim::Connections(c) => case.connections = Some(c),
                        Dim::Rate(r) => case.rate_per_connection_hz = Some(r),
                        Dim::Text => case.text = true,
                    }
                }
                _ if segment.is_empty() => return Err(fail("an empty segment")),
                _ => case.dimensions.push(segment.to_owned()),
            }
        }
        Ok(case)
    }
}

enum Dim {
    Window(u64),
    Delay(f64),
    Connections(u64),
    Rate(f64),
    Text,
}

/// `c0s1` → (0, Some(1)); `c0` → (0, None).
fn parse_placement(text: &str) -> Option<(usize, Option<usize>)> {
    let rest = text.strip_prefix('c')?;
    match rest.split_once('s') {
        Some((client, server)) => Some((client.parse().ok()?, Some(server.parse().ok()?))),
        None => Some((rest.parse().ok()?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 12] = [
        "pingpong/tcp/64B/c0s1",
        "pingpong/null/64B/c0",
        "pingpong/null[delay=300ns]/64B/c0",
        "pingpong/tcp[nagle,sndbuf=1024,rcvbuf=2048]/26B:12B/c0s0",
        "stream/shm[wait=hybrid]/1048576B/c1s0",
        "rpc/tcp/64B/w8/d10ms/c0s1",
        "rpc/tcp/64B/w1/d0.5ms/c0s1",
        "load/uds/64B/c1000/r5Hz/c0s1",
        "load/null/64B/c10/r2.5Hz/c0",
        "proxy/tcp->uds[back.seqpacket]/64B/text/c0s1",
        "conn-cost/tcp/64B/c5000/c0s1",
        "http/tcp/1024B/front=h2/back=h1/c0s1",
    ];

    #[test]
    fn every_written_id_parses_back_to_itself() {
        for id in IDS {
            let parsed: CaseId = id.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.to_string(), id);
        }
    }

    #[test]
    fn the_parts_land_in_their_fields() {
        let id: CaseId = "load/uds/64B/c1000/r5Hz/c0s1".parse().unwrap();
        assert_eq!((id.connections, id.rate_per_connection_hz), (Some(1000), Some(5.0)));
        assert_eq!((id.client_core, id.server_core), (0, Some(1)));
        let id: CaseId = "proxy/tcp->uds[back.seqpacket]/64B:12B/text/c0s1".parse().unwrap();
        assert_eq!(id.back_transport.as_deref(), Some("uds"));
        assert_eq!(id.options_label().as_deref(), Some("back.seqpacket"));
        assert_eq!((id.reply_bytes, id.text), (Some(12), true));
    }

    #[test]
    fn the_injected_delay_is_dropped_from_the_match_key() {
        let id: CaseId = "pingpong/null[delay=300ns]/64B/c0".parse().unwrap();
        assert_eq!(id.injected_delay_ns(), Some(300));
        assert_eq!(id.without_injected_delay().to_string(), "pingpong/null/64B/c0");
        let id: CaseId = "pingpong/tcp[nagle,delay=x]/64B/c0s1".parse().unwrap();
        assert_eq!(
            id.without_injected_delay().to_string(),
            "pingpong/tcp[nagle,delay=x]/64B/c0s1"
        );
    }

    #[test]
    fn malformed_ids_name_their_problem() {
        for (id, problem) in [
            ("pingpong", "no `/`"),
            ("pingpong/tcp", "no size"),
            ("pingpong/tcp/64B", "no placement"),
            ("pingpong/tcp/64/c0s1", "bad size"),
            ("pingpong/tcp[x/64B/c0s1", "`[` without `]`"),
            ("pingpong/tcp/64B/zz", "bad placement"),
        ] {
            let err = id.parse::<CaseId>().unwrap_err();
            assert!(err.problem.contains(problem), "{id}: {err}");
        }
    }
}
