//! What a case asks of its store: the kind (`state` in a plan) and each kind's options.
//!
//! The option structs are serde types whose field names are the config keys; unknown keys are
//! errors. Timeouts are not config keys (they are about this machine, not the case) and keep
//! their defaults unless code sets them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where backends keep their clients' records (the `state` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Each backend's own in-process map: correct only under affinity.
    Local,
    /// One map in shared memory, shared by the backends.
    Shm,
    /// A `redis-server` started for the trial.
    Redis,
    /// A PostgreSQL cluster made for the trial.
    Postgres,
    /// One SQLite database file in WAL mode.
    Sqlite,
}

impl StoreKind {
    /// Every kind, in config order.
    pub const ALL: [StoreKind; 5] = [
        StoreKind::Local,
        StoreKind::Shm,
        StoreKind::Redis,
        StoreKind::Postgres,
        StoreKind::Sqlite,
    ];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::Shm => "shm",
            StoreKind::Redis => "redis",
            StoreKind::Postgres => "postgres",
            StoreKind::Sqlite => "sqlite",
        }
    }

    /// Whether all backends see the same records (every kind but `local`).
    pub fn is_shared(self) -> bool {
        self != StoreKind::Local
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `state` value that names no store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state `{0}` (expected local, shm, redis, postgres or sqlite)")]
pub struct ParseStoreKindError(pub String);

impl FromStr for StoreKind {
    type Err = ParseStoreKindError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        StoreKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ParseStoreKindError(text.to_owned()))
    }
}

/// Whether Redis writes an append-only file (`persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Memory only (`appendonly no`, `save ""`).
    #[default]
    None,
    /// `appendonly yes` with Redis's default `appendfsync everysec`.
    Aof,
}

/// How often SQLite syncs the file to disk (`synchronous`, SQLite's `PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Never: the OS decides.
    Off,
    /// At WAL checkpoints only (safe from corruption in WAL mode; a commit may be lost on power loss).
    #[default]
    Normal,
    /// At every commit.
    Full,
}

impl Synchronous {
    /// The pragma's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Options of the `redis` store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisOptions {
    /// Whether the server keeps an append-only file.
    pub persistence: Persistence,
    /// The server binary: a path, or a name looked up in `PATH`.
    pub binary: PathBuf,
    /// How long the server may take to answer `PING` after it was started.
    #[serde(skip)]
    pub start_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            persistence: Persistence::None,
            binary: PathBuf::from("redis-server"),
            start_timeout: Duration::from_secs(15),
        }
    }
}

/// Options of the `postgres` store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresOptions {
    /// `synchronous_commit`: whether a commit waits for its WAL to reach the disk.
    pub synchronous_commit: bool,
    /// `fsync`: whether the server syncs to disk at all.
    pub fsync: bool,
    /// Where `initdb` and `postgres` are; `None` looks in `/usr/lib/postgresql/<newest>/bin`,
    /// then `/usr/local/bin` and `/usr/bin`.
    pub bin_dir: Option<PathBuf>,
    /// The system user the server runs as when we are root (PostgreSQL refuses root).
    pub user: String,
    /// How long `initdb` may take.
    #[serde(skip)]
    pub initdb_timeout: Duration,
    /// How long the server may take to accept a connection after it was started.
    #[serde(skip)]
    pub start_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            synchronous_commit: true,
            fsync: true,
            bin_dir: None,
            user: "postgres".to_owned(),
            initdb_timeout: Duration::from_secs(120),
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// Options of the `sqlite` store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteOptions {
    /// `PRAGMA synchronous`.
    pub synchronous: Synchronous,
    /// How long a writer waits for another one's lock before the request fails.
    #[serde(skip)]
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A store and its options: what [`StoreHost::start`](crate::StoreHost::start) starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum StoreConfig {
    /// [`StoreKind::Local`].
    Local,
    /// [`StoreKind::Shm`].
    Shm,
    /// [`StoreKind::Redis`].
    Redis(RedisOptions),
    /// [`StoreKind::Postgres`].
    Postgres(PostgresOptions),
    /// [`StoreKind::Sqlite`].
    Sqlite(SqliteOptions),
}

impl StoreConfig {
    /// `kind` with default options.
    pub fn default_for(kind: StoreKind) -> StoreConfig {
        match kind {
            StoreKind::Local => StoreConfig::Local,
            StoreKind::Shm => StoreConfig::Shm,
            StoreKind::Redis => StoreConfig::Redis(RedisOptions::default()),
            StoreKind::Postgres => StoreConfig::Postgres(PostgresOptions::default()),
            StoreKind::Sqlite => StoreConfig::Sqlite(SqliteOptions::default()),
        }
    }

    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            StoreConfig::Local => StoreKind::Local,
            StoreConfig::Shm => StoreKind::Shm,
            StoreConfig::Redis(_) => StoreKind::Redis,
            StoreConfig::Postgres(_) => StoreKind::Postgres,
            StoreConfig::Sqlite(_) => StoreKind::Sqlite,
        }
    }
}

/// What the trial tells the store about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSetup {
    /// The folder in which the store makes its own work folder (server files, sockets, the
    /// database). For `postgres` as root, every folder on the way must be traversable by the
    /// server's user (`/tmp` is).
    pub work_dir: PathBuf,
    /// How many distinct clients the trial has (the shared map's capacity is twice this).
    pub n_clients: usize,
    /// The data bytes of each record (`state_bytes`).
    pub state_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in StoreKind::ALL {
            assert_eq!(kind.as_str().parse::<StoreKind>(), Ok(kind));
            assert_eq!(StoreConfig::default_for(kind).kind(), kind);
        }
        assert!("mysql".parse::<StoreKind>().is_err());
    }

    #[test]
    fn options_parse_from_config_keys_and_refuse_unknown_ones() {
        let redis: RedisOptions = serde_json::from_str(r#"{"persistence": "aof"}"#).expect("parse");
        assert_eq!(redis.persistence, Persistence::Aof);
        assert_eq!(redis.binary, PathBuf::from("redis-server"));
        let config: StoreConfig =
            serde_json::from_str(r#"{"state": "postgres", "synchronous_commit": false}"#).expect("parse");
        assert!(matches!(
            config,
            StoreConfig::Postgres(PostgresOptions {
                synchronous_commit: false,
                ..
            })
        ));
        assert!(serde_json::from_str::<SqliteOptions>(r#"{"sync": "off"}"#).is_err());
    }
}
