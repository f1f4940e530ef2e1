//! The HTTP engine of ipcbench's `http` scenario: an origin, a relay and a load client that
//! speak real HTTP/1.1 and HTTP/2 (hyper 1.x and h2), with optional TLS (rustls with a
//! certificate generated at start), plus a driver for nginx as an external relay.
//!
//! Each role runs on a current-thread tokio runtime it creates itself, because the harness
//! pins each role's process to one core:
//! - [`Origin`]: `bind` then `run` until a [`Stop`]; answers `GET /obj/<bytes>/<key>` with
//!   that many bytes ([`object_path`]), and counts requests and wire bytes.
//! - [`Relay`]: front h1 | h2 (optional TLS), back h1 (a bounded keep-alive pool whose wait
//!   is measured) or h2 (multiplexed connections), an in-memory cache by path that marks
//!   answers `x-cache: hit | miss`.
//! - [`Client`]: `connect` then `run_block` as often as needed (direct and relayed blocks can
//!   alternate); open loop with coordinated-omission correction or closed loop; every answer
//!   checked. Returns a [`BlockResult`] with corrected, raw, hit and miss histograms.
//! - [`Nginx`]: a generated config, nginx as a child process, stopped and removed on drop.
//!
//! Wire bytes are counted at the socket, below TLS ([`WireBytes`]). Only loopback addresses
//! and Unix sockets are accepted ([`Address`]).
#![forbid(unsafe_code)]

mod address;
mod cache;
mod client;
mod connector;
mod error;
mod headers;
mod histogram;
mod nginx;
mod origin;
mod protocol;
mod relay;
mod server;
mod stop;
mod timer;
mod tls;
mod wire;

pub use address::Address;
pub use client::{BlockResult, Client, ClientConfig, ClientTotals, ERROR_BACKOFF, MAX_LANES, Rate};
pub use error::HttpError;
pub use headers::{MAX_HEADER_BYTES, MAX_HEADER_VALUE_BYTES, MAX_REQUEST_HEADERS, RequestHeaders};
pub use histogram::{HISTOGRAM_MAX_NS, HISTOGRAM_SIGFIG, new_histogram};
pub use nginx::{
    Nginx, NginxConfig, NginxVersion, child_pids, find_nginx, nginx_version, process_tree_cpu, render_config,
};
pub use origin::{DEFAULT_MAX_STREAMS, OBJECT_PREFIX, Origin, OriginConfig, OriginCounters, OriginReport, object_path};
pub use protocol::{Protocol, ServerProtocol};
pub use relay::{CACHE_HEADER, Relay, RelayConfig, RelayCounters, RelayReport};
pub use server::TLS_ACCEPT_LIMIT;
pub use stop::Stop;
pub use tls::{ClientTls, SERVER_NAME, TlsIdentity};
pub use wire::WireBytes;
