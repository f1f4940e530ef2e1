//! [`PostgresServer`], a throwaway PostgreSQL cluster for one trial, and [`PostgresStore`], a
//! connection to it.
//!
//! The cluster is made by `initdb` in `<work folder>/data` and served by `postgres` itself (no
//! `pg_ctl`, so the server is our child and dies with us: `process` module docs). It listens
//! on a Unix socket in the work folder only (`listen_addresses = ''`), trusts local
//! connections of the superuser `postgres`, and keeps its dynamic shared memory in files in the
//! data folder (`dynamic_shared_memory_type = mmap`), so nothing lands in `/dev/shm`.
//!
//! PostgreSQL refuses to run as root. As root, the work folder is given to the `postgres`
//! system user (the Debian package makes it; `user` picks another) and `initdb` and the server
//! run as that user through `setpriv`; no `unsafe` `pre_exec`. Every folder above the work
//! folder must then be traversable by that user (checked first).
//!
//! Records are rows of `client_state (client_id BIGINT PRIMARY KEY, counter BIGINT, data
//! BYTEA)`, client ids stored bit for bit as signed integers. A read-modify-write is one
//! prepared statement: `INSERT ... ON CONFLICT (client_id) DO UPDATE SET counter = t.counter +
//! 1, data = EXCLUDED.data RETURNING counter`, atomic under concurrent upserts of one client.
//!
//! Stopping is `pg_ctl stop -m immediate`'s signal (SIGQUIT) to the server, SIGKILL after a
//! grace period, then SIGKILL to any of its children still running, and removal of the small
//! System V segment PostgreSQL keeps as an interlock if it is still there.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement};
use rustix::process::Signal;

use crate::config::{PostgresOptions, StoreKind};
use crate::error::{StoreError, chain};
use crate::process::{Launch, PidStamp, ServerProcess, SystemUser, WorkDir, children_of, is_root, log_tail};
use crate::redis::MAX_SOCKET_PATH;
use crate::store::{RmwOutcome, Store, counter_from_sql, from_sql_id, to_sql_id};

const STORE: &str = "postgres";
/// The database superuser `initdb` makes, and the role we connect as.
const SUPERUSER: &str = "postgres";
const DATABASE: &str = "postgres";
/// The port number in the socket's name (`.s.PGSQL.<port>`); no TCP port is opened.
const PORT: u16 = 5432;
/// How long the server has to stop after SIGQUIT before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const RMW: &str = "INSERT INTO client_state AS t (client_id, counter, data) VALUES ($1, 1, $2) \
                   ON CONFLICT (client_id) DO UPDATE SET counter = t.counter + 1, data = EXCLUDED.data \
                   RETURNING counter";

/// A PostgreSQL cluster made for one trial, served on a Unix socket in its own work folder.
///
/// Dropping it (also during a panic) stops the server and its processes, reaps the server,
/// and removes the cluster and its folder.
///
/// # Platform-specific behavior
///
/// Linux: the server gets SIGKILL when the thread that started it ends (`process` module
/// docs); its own children follow it. A `kill -9` of the owner leaves the folder and a System V
/// segment, which [`sweep_stale`](crate::sweep_stale) removes.
#[derive(Debug)]
pub struct PostgresServer {
    process: ServerProcess,
    dir: WorkDir,
}

impl PostgresServer {
    /// Makes a cluster in a new work folder under `parent`, starts it, waits (up to
    /// `options.start_timeout`) until it accepts a connection, and creates the table.
    ///
    /// # Errors
    ///
    /// `Unavailable` when the binaries, the server's user or `setpriv` are missing; `Start`
    /// or `StartTimeout` when `initdb` or the server fail (with their logs' last lines);
    /// `BadOption` when the server's user cannot reach `parent`; `Io` for the folder.
    pub fn start(options: &PostgresOptions, parent: &Path) -> Result<PostgresServer, StoreError> {
        let bin_dir = find_bin_dir(options)?;
        let run_as = if is_root() {
            Some(SystemUser::lookup(&options.user).ok_or_else(|| StoreError::Unavailable {
                store: STORE,
                reason: format!(
                    "PostgreSQL does not run as root and there is no `{}` user (Debian's `postgresql` package makes one)",
                    options.user
                ),
            })?)
        } else {
            None
        };
        let dir = WorkDir::create(parent, StoreKind::Postgres)?;
        let socket = dir.path().join(format!(".s.PGSQL.{PORT}"));
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
        if let Some(user) = &run_as {
            dir.give_to(user)?;
            if !user.can_traverse(dir.path()) {
                return Err(StoreError::BadOption {
                    store: STORE,
                    option: "work_dir",
                    reason: format!(
                        "the server runs as `{}`, which cannot reach {}: use a folder every user can traverse (under /tmp, say)",
                        user.name,
                        dir.path().display()
                    ),
                });
            }
        }
        let data = dir.path().join("data");
        Launch::new(bin_dir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .arg("-U")
            .arg(SUPERUSER)
            .arg("--auth=trust")
            .arg("--encoding=UTF8")
            .arg("--no-sync")
            .run_as(run_as.clone())
            .run(STORE, &dir.path().join("initdb.log"), options.initdb_timeout)?;
        let on_off = |on: bool| if on { "on" } else { "off" };
        let settings = [
            // Empty: no TCP at all.
            ("listen_addresses", String::new()),
            ("unix_socket_directories", dir.path().display().to_string()),
            ("port", PORT.to_string()),
            ("fsync", on_off(options.fsync).to_owned()),
            ("synchronous_commit", on_off(options.synchronous_commit).to_owned()),
            ("dynamic_shared_memory_type", "mmap".to_owned()),
            ("logging_collector", "off".to_owned()),
        ];
        let launch = settings
            .iter()
            .fold(
                Launch::new(bin_dir.join("postgres")).arg("-D").arg(&data),
                |launch, (key, value)| launch.arg("-c").arg(format!("{key}={value}")),
            )
            .run_as(run_as);
        let process = ServerProcess::start(STORE, &launch, &dir, "postgres.log", Signal::QUIT, STOP_GRACE)?;
        let mut server = PostgresServer { process, dir };
        let mut client = server.wait_ready(options.start_timeout)?;
        client
            .batch_execute(
                "CREATE TABLE client_state (client_id BIGINT PRIMARY KEY, counter BIGINT NOT NULL, data BYTEA NOT NULL)",
            )
            .map_err(|e| backend("create table", &e))?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<Client, StoreError> {
        let started = Instant::now();
        loop {
            let last_error = match connect_client(self.dir.path()) {
                Ok(client) => return Ok(client),
                Err(err) => chain(&err),
            };
            if let Some(status) = self.process.exited() {
                return Err(StoreError::Start {
                    store: STORE,
                    reason: format!(
                        "exited with {status}: {}",
                        log_tail(&self.dir.path().join("postgres.log"))
                    ),
                });
            }
            if started.elapsed() >= limit {
                return Err(StoreError::StartTimeout {
                    store: STORE,
                    waited: limit,
                    last_error,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The folder holding the server's Unix socket (what clients connect to).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The work folder (removed on drop).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's (postmaster's) pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The pids of the server's processes now running: the postmaster and its children.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        pids.extend(children_of(self.pid()).into_iter().map(|c| c.pid));
        pids
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let children = children_of(self.process.pid());
        self.process.stop();
        // After a clean immediate shutdown no child is left; after the SIGKILL fallback they
        // would notice the postmaster's death on their own, but not before we remove the folder.
        for child in children {
            child.kill_and_wait();
        }
        remove_stale_segment(self.dir.path());
        // `self.dir` is dropped next, removing the cluster.
    }
}

/// Where `initdb` and `postgres` are: the option, else the newest `/usr/lib/postgresql/*/bin`,
/// else `/usr/local/bin` or `/usr/bin`.
fn find_bin_dir(options: &PostgresOptions) -> Result<PathBuf, StoreError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = &options.bin_dir {
        return if has_both(dir) {
            Ok(dir.clone())
        } else {
            Err(StoreError::Unavailable {
                store: STORE,
                reason: format!("no `initdb` and `postgres` in {}", dir.display()),
            })
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|(_, dir)| dir)
        .chain([PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")])
        .find(|dir| has_both(dir))
        .ok_or_else(|| StoreError::Unavailable {
            store: STORE,
            reason: "no `initdb` and `postgres` found in /usr/lib/postgresql/*/bin, /usr/local/bin or /usr/bin \
                     (Debian's `postgresql` package installs them)"
                .to_owned(),
        })
}

/// Removes the System V segment of the cluster under `work_dir` if it is still there:
/// PostgreSQL removes it itself on a clean shutdown, but not when it was killed. Checked
/// against `/proc/sysvipc/shm` (same key, id and creator, no process attached) before
/// anything is removed, so a segment that merely reused the id is never touched.
pub(crate) fn remove_stale_segment(work_dir: &Path) {
    // `postmaster.pid`: line 1 the pid, line 7 the segment's key and id.
    let Ok(text) = fs::read_to_string(work_dir.join("data").join("postmaster.pid")) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let (Some(pid), Some(segment)) = (lines.first(), lines.get(6)) else {
        return;
    };
    let mut words = segment.split_whitespace();
    let (Some(key), Some(id)) = (words.next(), words.next()) else {
        return;
    };
    let (Ok(pid), Ok(key), Ok(id)) = (pid.trim().parse::<u32>(), key.parse::<i64>(), id.parse::<i64>()) else {
        return;
    };
    let Ok(table) = fs::read_to_string("/proc/sysvipc/shm") else {
        return;
    };
    // Columns: key shmid perms size cpid lpid nattch ...
    let ours = table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 6
            && cols[0].parse::<i64>() == Ok(key)
            && cols[1].parse::<i64>() == Ok(id)
            && cols[4].parse::<u32>() == Ok(pid)
            && cols[6] == "0"
            && PidStamp::of(pid).is_none_or(|p| !p.is_running())
    });
    if ours {
        let _ = Command::new("ipcrm").arg("-m").arg(id.to_string()).status();
    }
}

fn connect_client(socket_dir: &Path) -> Result<Client, postgres::Error> {
    postgres::Config::new()
        .host_path(socket_dir)
        .port(PORT)
        .user(SUPERUSER)
        .dbname(DATABASE)
        .connect_timeout(Duration::from_secs(10))
        .connect(NoTls)
}

fn backend(op: &'static str, err: &postgres::Error) -> StoreError {
    // The server's own message (`DbError`) is the error's source; `chain` includes it.
    StoreError::backend(STORE, op, err)
}

/// One connection to a PostgreSQL server, with the read-modify-write prepared.
pub struct PostgresStore {
    client: Client,
    rmw: Statement,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the server whose socket is in `socket_dir`, as the superuser `postgres`.
    ///
    /// # Errors
    ///
    /// `Backend` with PostgreSQL's message.
    pub fn connect(socket_dir: &Path) -> Result<PostgresStore, StoreError> {
        let mut client = connect_client(socket_dir).map_err(|e| backend("connect", &e))?;
        let rmw = client.prepare(RMW).map_err(|e| backend("prepare", &e))?;
        Ok(PostgresStore { client, rmw })
    }
}

impl Store for PostgresStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }

    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError> {
        let started = Instant::now();
        let row = self
            .client
            .query_one(&self.rmw, &[&to_sql_id(client_id), &data])
            .map_err(|e| backend("rmw", &e))?;
        let counter = counter_from_sql(STORE, row.get(0))?;
        Ok(RmwOutcome::since(started, counter))
    }

    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_opt(
                "SELECT counter FROM client_state WHERE client_id = $1",
                &[&to_sql_id(client_id)],
            )
            .map_err(|e| backend("read", &e))?;
        row.map_or(Ok(0), |row| counter_from_sql(STORE, row.get(0)))
    }

    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError> {
        self.client
            .query("SELECT client_id, counter FROM client_state", &[])
            .map_err(|e| backend("list", &e))?
            .into_iter()
            .map(|row| Ok((from_sql_id(row.get(0)), counter_from_sql(STORE, row.get(1))?)))
            .collect()
    }
}
