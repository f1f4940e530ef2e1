//! The state layer of the `balance` scenario: where backends keep each client's record (a
//! `u64` counter and `state_bytes` of data), and the servers behind it.
//!
//! Every request does one read-modify-write of its client's record through a [`Store`]
//! ([`Store::rmw`]: counter + 1, data replaced, the new counter and the time it took back).
//! At the end [`Store::counters`] lists every client's counter for the `lost_updates` check:
//! each must equal the requests its client was answered for.
//!
//! | [`StoreKind`] | where the records live | handle |
//! |---|---|---|
//! | `local` | a `HashMap` in each backend process (correct only under affinity) | [`LocalStore`] |
//! | `shm` | one [`ipcbench_shm::SharedMap`] in a memfd shared by all backends | [`ShmStore`] |
//! | `redis` | a `redis-server` started for the trial on a Unix socket ([`RedisServer`]) | [`RedisStore`] |
//! | `postgres` | a throwaway PostgreSQL cluster on a Unix socket ([`PostgresServer`]) | [`PostgresStore`] |
//! | `sqlite` | one database file in WAL mode ([`SqliteFile`]) | [`SqliteStore`] |
//!
//! The parent process of a trial starts what the store needs with [`StoreHost::start`] and
//! hands each backend process the serializable [`StoreAddress`]; each backend opens its own
//! handle with [`StoreAddress::connect`] (one connection per backend). Dropping the host stops
//! its server and removes every file it made, also during a panic.
//!
//! Surprising choices, each explained where it lives:
//! - A store that cannot run here (binary missing, no `postgres` user) is
//!   [`StoreError::Unavailable`], distinct from a failure, so the case can be reported as
//!   unsupported with the reason (`error`).
//! - Servers are started through `setpriv --pdeathsig KILL`, so they die with the thread that
//!   started them even after a `kill -9` of the runner; what is left on disk then is removed by
//!   [`sweep_stale`] (`process`).
//! - PostgreSQL refuses to run as root, so as root it runs as the `postgres` user through
//!   `setpriv`; no `unsafe` `pre_exec` (`postgres`).
#![forbid(unsafe_code)]

mod config;
mod error;
mod host;
mod local;
mod postgres;
mod process;
mod redis;
mod shm;
mod sqlite;
mod store;

pub use config::{
    ParseStoreKindError, Persistence, PostgresOptions, RedisOptions, SqliteOptions, StoreConfig, StoreKind, StoreSetup,
    Synchronous,
};
pub use error::StoreError;
pub use host::{StoreAddress, StoreHost};
pub use local::LocalStore;
pub use postgres::{PostgresServer, PostgresStore};
pub use process::{SweepReport, WORK_DIR_PREFIX, sweep_stale};
pub use redis::{RedisServer, RedisStore};
pub use shm::ShmStore;
pub use sqlite::{SqliteFile, SqliteStore};
pub use store::{RmwOutcome, Store};
