//! [`StoreHost`]: what the parent of a trial starts for its store, and [`StoreAddress`]: how a
//! backend process finds it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipcbench_shm::SharedMap;
use serde::{Deserialize, Serialize};

use crate::config::{StoreConfig, StoreKind, StoreSetup, Synchronous};
use crate::error::StoreError;
use crate::local::LocalStore;
use crate::postgres::{PostgresServer, PostgresStore};
use crate::redis::{RedisServer, RedisStore};
use crate::shm::ShmStore;
use crate::sqlite::{SqliteFile, SqliteStore};
use crate::store::Store;

/// The store of one trial, alive for as long as the trial: nothing for `local`, the shared
/// map for `shm`, the server for `redis` and `postgres`, the database file for `sqlite`.
///
/// Dropping it (also during a panic) stops the server and removes every file it made.
#[derive(Debug)]
pub struct StoreHost {
    hosted: Hosted,
    address: StoreAddress,
}

#[derive(Debug)]
enum Hosted {
    Local,
    Shm(SharedMap),
    Redis(RedisServer),
    Postgres(PostgresServer),
    Sqlite(SqliteFile),
}

impl StoreHost {
    /// Starts the store of `config` for a trial described by `setup`.
    ///
    /// # Errors
    ///
    /// `Unavailable` when the store cannot run here (mark the case unsupported); any other
    /// variant when it failed to start.
    pub fn start(config: &StoreConfig, setup: &StoreSetup) -> Result<StoreHost, StoreError> {
        let (hosted, address) = match config {
            StoreConfig::Local => (Hosted::Local, StoreAddress::Local),
            StoreConfig::Shm => {
                // Twice the clients: linear probing stays short at half load.
                let map = SharedMap::create(setup.n_clients.max(1).saturating_mul(2), setup.state_bytes)
                    .map_err(|e| StoreError::backend("shm", "create", &e))?;
                let address = StoreAddress::Shm {
                    address: map.address().to_owned(),
                };
                (Hosted::Shm(map), address)
            }
            StoreConfig::Redis(options) => {
                let server = RedisServer::start(options, &setup.work_dir)?;
                let address = StoreAddress::Redis {
                    socket: server.socket().to_owned(),
                };
                (Hosted::Redis(server), address)
            }
            StoreConfig::Postgres(options) => {
                let server = PostgresServer::start(options, &setup.work_dir)?;
                let address = StoreAddress::Postgres {
                    socket_dir: server.socket_dir().to_owned(),
                };
                (Hosted::Postgres(server), address)
            }
            StoreConfig::Sqlite(options) => {
                let file = SqliteFile::create(&setup.work_dir)?;
                let address = StoreAddress::Sqlite {
                    path: file.path().to_owned(),
                    synchronous: options.synchronous,
                    busy_timeout_ms: options.busy_timeout.as_millis().try_into().unwrap_or(u64::MAX),
                };
                (Hosted::Sqlite(file), address)
            }
        };
        Ok(StoreHost { hosted, address })
    }

    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        self.address.kind()
    }

    /// What backends connect to; serializable, to be passed to backend processes.
    pub fn address(&self) -> &StoreAddress {
        &self.address
    }

    /// A new handle on the store from this process (`address().connect()`).
    ///
    /// # Errors
    ///
    /// As [`StoreAddress::connect`].
    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        self.address.connect()
    }

    /// The store's work folder, if it has one (removed on drop).
    pub fn work_dir(&self) -> Option<&Path> {
        match &self.hosted {
            Hosted::Local | Hosted::Shm(_) => None,
            Hosted::Redis(server) => Some(server.work_dir()),
            Hosted::Postgres(server) => Some(server.work_dir()),
            Hosted::Sqlite(file) => Some(file.work_dir()),
        }
    }

    /// The shared map of a `shm` store (this process's mapping of it).
    pub fn shared_map(&self) -> Option<&SharedMap> {
        match &self.hosted {
            Hosted::Shm(map) => Some(map),
            _ => None,
        }
    }

    /// The pids of the store's server processes now running (for their CPU use); empty for
    /// stores without a server.
    pub fn server_pids(&self) -> Vec<u32> {
        match &self.hosted {
            Hosted::Redis(server) => vec![server.pid()],
            Hosted::Postgres(server) => server.pids(),
            Hosted::Local | Hosted::Shm(_) | Hosted::Sqlite(_) => Vec::new(),
        }
    }
}

/// Where a backend finds the trial's store: what [`StoreHost::address`] hands out, passed to
/// backend processes (it is serde, so it rides in their spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum StoreAddress {
    /// A fresh map in each process.
    Local,
    /// The shared map's `/proc/<pid>/fd/<fd>#<token>` address.
    Shm {
        /// [`SharedMap::address`].
        address: String,
    },
    /// The server's Unix socket.
    Redis {
        /// The socket's path.
        socket: PathBuf,
    },
    /// The folder of the server's Unix socket.
    Postgres {
        /// The socket folder.
        socket_dir: PathBuf,
    },
    /// The database file and the connection options.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA synchronous`.
        synchronous: Synchronous,
        /// How long a writer waits for the lock.
        busy_timeout_ms: u64,
    },
}

impl StoreAddress {
    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            StoreAddress::Local => StoreKind::Local,
            StoreAddress::Shm { .. } => StoreKind::Shm,
            StoreAddress::Redis { .. } => StoreKind::Redis,
            StoreAddress::Postgres { .. } => StoreKind::Postgres,
            StoreAddress::Sqlite { .. } => StoreKind::Sqlite,
        }
    }

    /// Opens a handle on the store: a connection, a mapping, or (for `local`) a new map.
    ///
    /// # Errors
    ///
    /// `Backend` with the store's message when it cannot be reached.
    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            StoreAddress::Local => Box::new(LocalStore::new()),
            StoreAddress::Shm { address } => Box::new(ShmStore::open(address)?),
            StoreAddress::Redis { socket } => Box::new(RedisStore::connect(socket)?),
            StoreAddress::Postgres { socket_dir } => Box::new(PostgresStore::connect(socket_dir)?),
            StoreAddress::Sqlite {
                path,
                synchronous,
                busy_timeout_ms,
            } => Box::new(SqliteStore::open(
                path,
                *synchronous,
                Duration::from_millis(*busy_timeout_ms),
            )?),
        })
    }
}
