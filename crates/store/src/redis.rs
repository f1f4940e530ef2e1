//! [`RedisServer`], a `redis-server` made for one trial, and [`RedisStore`], a connection to it.
//!
//! The server listens on a Unix socket in its work folder only (`port 0` turns TCP off), keeps
//! no snapshots (`save ""`), and writes an append-only file there only with `persistence =
//! "aof"`. Records are two hashes: `ipcbench:counter` (client id -> counter) and
//! `ipcbench:data` (client id -> data). A read-modify-write is `MULTI; HINCRBY; HSET; EXEC`
//! sent as one pipeline: atomic, and one round trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redis::Commands;
use rustix::process::Signal;

use crate::config::{Persistence, RedisOptions, StoreKind};
use crate::error::{StoreError, chain};
use crate::process::{Launch, ServerProcess, WorkDir, log_tail, write_file};
use crate::store::{RmwOutcome, Store};

const STORE: &str = "redis";
const COUNTERS: &str = "ipcbench:counter";
const DATA: &str = "ipcbench:data";
/// The longest Unix socket path (`sun_path` holds 108 bytes with the terminating zero).
pub(crate) const MAX_SOCKET_PATH: usize = 107;
/// How long the server has to shut down after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A `redis-server` started for one trial, listening on a Unix socket in its own work folder.
///
/// Dropping it (also during a panic) stops the server (SIGTERM, SIGKILL after 5 s), reaps it
/// and removes the folder.
///
/// # Platform-specific behavior
///
/// Linux: the server gets SIGKILL when the thread that started it ends (`process` module docs),
/// so a `kill -9` of the owner leaves only the folder, which [`sweep_stale`](crate::sweep_stale)
/// removes.
#[derive(Debug)]
pub struct RedisServer {
    // Field order matters: the server stops before its folder is removed.
    process: ServerProcess,
    socket: PathBuf,
    dir: WorkDir,
}

impl RedisServer {
    /// Starts a server in a new work folder under `parent` and waits (up to
    /// `options.start_timeout`) until it answers `PING`.
    ///
    /// # Errors
    ///
    /// `Unavailable` when the binary is missing or cannot be run; `Start` or `StartTimeout`
    /// when it does not come up (with its log's last lines); `Io` for the folder.
    pub fn start(options: &RedisOptions, parent: &Path) -> Result<RedisServer, StoreError> {
        let dir = WorkDir::create(parent, StoreKind::Redis)?;
        let socket = dir.path().join("redis.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(StoreError::BadOption {
                store: STORE,
                option: "work_dir",
                reason: format!(
                    "the socket path {} is longer than {MAX_SOCKET_PATH} bytes",
                    socket.display()
                ),
            });
        }
        let appendonly = match options.persistence {
            Persistence::None => "no",
            Persistence::Aof => "yes",
        };
        let config = format!(
            "# Written by ipcbench-store for one trial.\n\
             port 0\n\
             unixsocket {socket}\n\
             unixsocketperm 700\n\
             dir {dir}\n\
             save \"\"\n\
             appendonly {appendonly}\n\
             daemonize no\n\
             databases 1\n\
             loglevel warning\n\
             logfile \"\"\n",
            socket = socket.display(),
            dir = dir.path().display(),
        );
        let config_path = dir.path().join("redis.conf");
        write_file(&config_path, &config)?;
        let launch = Launch::new(&options.binary).arg(&config_path);
        let process = ServerProcess::start(STORE, &launch, &dir, "redis.log", Signal::TERM, STOP_GRACE)?;
        let mut server = RedisServer { process, socket, dir };
        server.wait_ready(options.start_timeout)?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        loop {
            let last_error = match RedisStore::connect(&self.socket).and_then(|mut s| s.ping()) {
                Ok(()) => return Ok(()),
                Err(err) => err.to_string(),
            };
            if let Some(status) = self.process.exited() {
                return Err(StoreError::Start {
                    store: STORE,
                    reason: format!("exited with {status}: {}", log_tail(&self.dir.path().join("redis.log"))),
                });
            }
            if started.elapsed() >= limit {
                return Err(StoreError::StartTimeout {
                    store: STORE,
                    waited: limit,
                    last_error,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The work folder (removed on drop).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// One connection to a Redis server.
pub struct RedisStore {
    connection: redis::Connection,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the server at the Unix socket `socket`.
    ///
    /// # Errors
    ///
    /// `Backend` with Redis's message.
    pub fn connect(socket: &Path) -> Result<RedisStore, StoreError> {
        let url = format!("redis+unix://{}", socket.display());
        let connection = redis::Client::open(url)
            .and_then(|client| client.get_connection())
            .map_err(|e| backend("connect", &e))?;
        Ok(RedisStore { connection })
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query::<String>(&mut self.connection)
            .map(drop)
            .map_err(|e| backend("ping", &e))
    }
}

fn backend(op: &'static str, err: &redis::RedisError) -> StoreError {
    StoreError::Backend {
        store: STORE,
        op,
        message: chain(err),
    }
}

impl Store for RedisStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Redis
    }

    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError> {
        let started = Instant::now();
        let (counter,): (u64,) = redis::pipe()
            .atomic()
            .hincr(COUNTERS, client_id, 1)
            .hset(DATA, client_id, data)
            .ignore()
            .query(&mut self.connection)
            .map_err(|e| backend("rmw", &e))?;
        Ok(RmwOutcome::since(started, counter))
    }

    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError> {
        let counter: Option<u64> = self
            .connection
            .hget(COUNTERS, client_id)
            .map_err(|e| backend("read", &e))?;
        Ok(counter.unwrap_or(0))
    }

    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError> {
        self.connection.hgetall(COUNTERS).map_err(|e| backend("list", &e))
    }
}
