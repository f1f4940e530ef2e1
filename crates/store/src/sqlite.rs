//! [`SqliteFile`], one SQLite database in WAL mode for one trial, and [`SqliteStore`], a
//! connection to it.
//!
//! Every backend opens the same file. WAL mode lets readers run beside the one writer; writers
//! queue on SQLite's lock, waiting up to `busy_timeout` each. A read-modify-write is one
//! `BEGIN IMMEDIATE` transaction (the write lock is taken at its start, so it cannot fail
//! half-way on a lock upgrade) around one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use crate::config::{SqliteOptions, StoreKind, Synchronous};
use crate::error::StoreError;
use crate::process::WorkDir;
use crate::store::{RmwOutcome, Store, counter_from_sql, from_sql_id, to_sql_id};

const STORE: &str = "sqlite";
const RMW: &str = "INSERT INTO client_state (client_id, counter, data) VALUES (?1, 1, ?2) \
                   ON CONFLICT (client_id) DO UPDATE SET counter = counter + 1, data = excluded.data \
                   RETURNING counter";

fn backend(op: &'static str, err: &rusqlite::Error) -> StoreError {
    StoreError::backend(STORE, op, err)
}

/// The database file of one trial, in WAL mode with the table made, in its own work folder.
///
/// It keeps one connection open for its life (so the WAL is not checkpointed away and made
/// again whenever the last backend disconnects). Dropping it removes the folder with the
/// database, its WAL and its shared-memory index.
#[derive(Debug)]
pub struct SqliteFile {
    // Field order matters: the connection closes before the folder is removed.
    _keeper: Connection,
    path: PathBuf,
    dir: WorkDir,
}

impl SqliteFile {
    /// Makes the database in a new work folder under `parent`.
    ///
    /// # Errors
    ///
    /// `Backend` with SQLite's message; `Io` for the folder.
    pub fn create(parent: &Path) -> Result<SqliteFile, StoreError> {
        let dir = WorkDir::create(parent, StoreKind::Sqlite)?;
        let path = dir.path().join("state.db");
        let keeper = Connection::open(&path).map_err(|e| backend("create", &e))?;
        let mode: String = keeper
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|e| backend("enable WAL", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                store: STORE,
                op: "enable WAL",
                message: format!("the journal mode stayed `{mode}`"),
            });
        }
        keeper
            .execute_batch(
                "CREATE TABLE client_state (client_id INTEGER PRIMARY KEY, counter INTEGER NOT NULL, data BLOB NOT NULL)",
            )
            .map_err(|e| backend("create table", &e))?;
        Ok(SqliteFile {
            _keeper: keeper,
            path,
            dir,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The work folder (removed on drop).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One connection to the shared database file.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
    /// Opens the database at `path` (made by [`SqliteFile::create`]) with `synchronous` and a
    /// busy timeout of `busy_timeout`.
    ///
    /// # Errors
    ///
    /// `Backend` with SQLite's message.
    pub fn open(path: &Path, synchronous: Synchronous, busy_timeout: Duration) -> Result<SqliteStore, StoreError> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags).map_err(|e| backend("open", &e))?;
        connection
            .busy_timeout(busy_timeout)
            .map_err(|e| backend("set busy_timeout", &e))?;
        connection
            .pragma_update(None, "synchronous", synchronous.as_str())
            .map_err(|e| backend("set synchronous", &e))?;
        // Fails early (rather than on the first request) if the file is not our database.
        connection.prepare_cached(RMW).map_err(|e| backend("prepare", &e))?;
        Ok(SqliteStore { connection })
    }

    /// Opens with the options of `options`.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_with(path: &Path, options: &SqliteOptions) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(path, options.synchronous, options.busy_timeout)
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Sqlite
    }

    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError> {
        let started = Instant::now();
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| backend("begin", &e))?;
        let counter: i64 = tx
            .prepare_cached(RMW)
            .and_then(|mut statement| {
                statement.query_row(rusqlite::params![to_sql_id(client_id), data], |row| row.get(0))
            })
            .map_err(|e| backend("rmw", &e))?;
        tx.commit().map_err(|e| backend("commit", &e))?;
        Ok(RmwOutcome::since(started, counter_from_sql(STORE, counter)?))
    }

    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError> {
        let counter: Option<i64> = self
            .connection
            .prepare_cached("SELECT counter FROM client_state WHERE client_id = ?1")
            .and_then(|mut statement| {
                let mut rows = statement.query([to_sql_id(client_id)])?;
                rows.next()?.map(|row| row.get(0)).transpose()
            })
            .map_err(|e| backend("read", &e))?;
        counter.map_or(Ok(0), |c| counter_from_sql(STORE, c))
    }

    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError> {
        let rows: Vec<(i64, i64)> = self
            .connection
            .prepare("SELECT client_id, counter FROM client_state")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| backend("list", &e))?;
        rows.into_iter()
            .map(|(id, counter)| Ok((from_sql_id(id), counter_from_sql(STORE, counter)?)))
            .collect()
    }
}
