//! Work folders and server processes, and how both are cleaned up, even after a `kill -9`.
//!
//! # Work folders
//!
//! Every store that keeps files makes one folder, `<parent>/ipcbench-store-<kind>-<pid>-<n>`
//! ([`WorkDir`]), and writes the file `owner` into it first: the pid and start time (from
//! `/proc/<pid>/stat`, so a reused pid is not mistaken for the owner) of the process that made
//! it. A server started for the store gets the file `server`, in the same format. Dropping the
//! guard that owns the folder removes it with everything in it.
//!
//! # Dying with the owner
//!
//! Servers are started as `setpriv --pdeathsig KILL [--reuid U --regid G --clear-groups] --
//! BINARY ARGS`. `setpriv` (util-linux) switches the user first and then sets
//! `PR_SET_PDEATHSIG` (a change of credentials would clear it), and execs the server, which is
//! therefore our direct child and gets SIGKILL as soon as the thread that spawned it ends: in
//! particular when the owning process is killed with SIGKILL and runs no destructor.
//!
//! The signal follows the spawning *thread*, not the process: start a guard on a thread that
//! outlives it (the runner's own thread, not a short-lived helper). Without `setpriv` a server
//! that needs no other user is started directly, and only [`sweep_stale`] cleans up after a
//! killed owner.
//!
//! # Sweeping
//!
//! A SIGKILL'd owner leaves its folders behind (and, for PostgreSQL, a small System V shared
//! memory segment). [`sweep_stale`] removes the folders in a parent folder whose owner no
//! longer runs: it first kills their server if it still runs (same pid *and* start time),
//! then removes the segment, then the folder. Call it on the parent folder before a run.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal};

use crate::config::StoreKind;
use crate::error::StoreError;

/// The name prefix of every work folder; [`sweep_stale`] touches nothing else.
pub const WORK_DIR_PREFIX: &str = "ipcbench-store-";
/// The owning process's pid file in a work folder.
const OWNER_FILE: &str = "owner";
/// The server's pid file in a work folder.
const SERVER_FILE: &str = "server";
/// A folder without an owner file is stale only once it is this old (it may be being made).
const UNOWNED_GRACE: Duration = Duration::from_secs(60);
/// How often a wait for a process polls it.
const POLL: Duration = Duration::from_millis(10);
/// How long a killed process may take to go away.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A process identified beyond its pid: its start time in clock ticks since boot, from
/// `/proc/<pid>/stat`, so a later process that reuses the pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PidStamp {
    pub(crate) pid: u32,
    start_time: u64,
}

impl PidStamp {
    /// The stamp of the running process `pid`, if there is one.
    pub(crate) fn of(pid: u32) -> Option<PidStamp> {
        let stat = ProcStat::read(pid)?;
        Some(PidStamp {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Whether this very process still runs (a zombie does not).
    pub(crate) fn is_running(self) -> bool {
        ProcStat::read(self.pid).is_some_and(|stat| stat.start_time == self.start_time && !stat.is_dead())
    }

    fn to_line(self) -> String {
        format!("{} {}\n", self.pid, self.start_time)
    }

    fn parse(text: &str) -> Option<PidStamp> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let start_time = words.next()?.parse().ok()?;
        Some(PidStamp { pid, start_time })
    }

    /// Reads a pid file written by [`write_pid_file`].
    fn read_file(path: &Path) -> Option<PidStamp> {
        PidStamp::parse(&fs::read_to_string(path).ok()?)
    }

    /// Sends SIGKILL and waits (bounded) until the process is gone; whether it went.
    pub(crate) fn kill_and_wait(self) -> bool {
        if !self.is_running() {
            return true;
        }
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        let deadline = Instant::now() + KILL_WAIT;
        while self.is_running() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }
}

/// The fields of `/proc/<pid>/stat` we use.
struct ProcStat {
    state: char,
    parent: u32,
    start_time: u64,
}

impl ProcStat {
    fn read(pid: u32) -> Option<ProcStat> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field 4 is the parent, field 22 the start time.
        Some(ProcStat {
            state: fields.first()?.chars().next()?,
            parent: fields.get(1)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The running children of `parent`.
pub(crate) fn children_of(parent: u32) -> Vec<PidStamp> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = ProcStat::read(pid)?;
            (stat.parent == parent && !stat.is_dead()).then_some(PidStamp {
                pid,
                start_time: stat.start_time,
            })
        })
        .collect()
}

fn write_pid_file(path: &Path, stamp: PidStamp) -> Result<(), StoreError> {
    fs::write(path, stamp.to_line()).map_err(StoreError::io(format!("write {}", path.display())))
}

/// A system user a server runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl SystemUser {
    /// Looks `name` up in `/etc/passwd`.
    pub(crate) fn lookup(name: &str) -> Option<SystemUser> {
        let passwd = fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 4 && fields[0] == name).then(|| {
                Some(SystemUser {
                    name: name.to_owned(),
                    uid: fields[2].parse().ok()?,
                    gid: fields[3].parse().ok()?,
                })
            })?
        })
    }

    /// Whether this user can reach `path` (search permission on it and every folder above).
    /// Only the mode bits and primary groups are considered.
    pub(crate) fn can_traverse(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        path.ancestors().all(|dir| {
            let Ok(meta) = fs::metadata(dir) else {
                return false;
            };
            let mode = meta.mode();
            if meta.uid() == self.uid {
                mode & 0o100 != 0
            } else if meta.gid() == self.gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            }
        })
    }
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A work folder of this process; dropping it removes it and everything in it.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Makes a fresh folder for `kind` in `parent` (made if missing) and writes its owner file.
    pub(crate) fn create(parent: &Path, kind: StoreKind) -> Result<WorkDir, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(parent).map_err(StoreError::io(format!("create {}", parent.display())))?;
        let pid = std::process::id();
        for n in 0u32.. {
            let path = parent.join(format!("{WORK_DIR_PREFIX}{kind}-{pid}-{n}"));
            match fs::create_dir(&path) {
                Ok(()) => {
                    let dir = WorkDir { path };
                    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o700))
                        .map_err(StoreError::io(format!("restrict {}", dir.path.display())))?;
                    let me = PidStamp::of(pid).ok_or_else(|| StoreError::Io {
                        op: "read /proc/self/stat".to_owned(),
                        source: io::Error::other("our own process is not in /proc"),
                    })?;
                    write_pid_file(&dir.path.join(OWNER_FILE), me)?;
                    return Ok(dir);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(StoreError::io(format!("create {}", path.display()))(err)),
            }
        }
        unreachable!("u32 names run out only after 4 billion folders")
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the folder itself to `user` (the files in it stay ours).
    pub(crate) fn give_to(&self, user: &SystemUser) -> Result<(), StoreError> {
        std::os::unix::fs::chown(&self.path, Some(user.uid), Some(user.gid)).map_err(StoreError::io(format!(
            "chown {} to {}",
            self.path.display(),
            user.name
        )))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Nothing to report to: a folder that cannot be removed is left for `sweep_stale`.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// How to start a server or tool: the binary, its arguments, the user it runs as.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) run_as: Option<SystemUser>,
}

impl Launch {
    /// `program` with no arguments, as ourselves.
    pub(crate) fn new(program: impl Into<PathBuf>) -> Self {
        Launch {
            program: program.into(),
            args: Vec::new(),
            run_as: None,
        }
    }

    /// Adds an argument.
    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs as `user` (through `setpriv`).
    pub(crate) fn run_as(mut self, user: Option<SystemUser>) -> Self {
        self.run_as = user;
        self
    }

    fn through_setpriv(&self) -> Command {
        let mut command = Command::new("setpriv");
        if let Some(user) = &self.run_as {
            command
                .arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg("--clear-groups");
        }
        command
            .arg("--pdeathsig=KILL")
            .arg("--")
            .arg(&self.program)
            .args(&self.args);
        command
    }

    fn direct(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    /// Starts it with no input and its output appended to `log`. A missing binary is
    /// `Unavailable`; a missing `setpriv` too when another user is needed.
    pub(crate) fn spawn(&self, store: &'static str, log: &Path) -> Result<Child, StoreError> {
        probe(store, &self.program)?;
        let stdio = || -> Result<(Stdio, Stdio), StoreError> {
            let file = File::options()
                .create(true)
                .append(true)
                .open(log)
                .map_err(StoreError::io(format!("open {}", log.display())))?;
            let copy = file
                .try_clone()
                .map_err(StoreError::io(format!("open {}", log.display())))?;
            Ok((Stdio::from(file), Stdio::from(copy)))
        };
        let (out, err) = stdio()?;
        match self
            .through_setpriv()
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
        {
            Ok(child) => Ok(child),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.run_as.is_none() => {
                // No `setpriv`: start the server directly; only `sweep_stale` then cleans up
                // after a killed owner (module docs).
                let (out, err) = stdio()?;
                self.direct()
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
                    .map_err(|e| spawn_error(store, &self.program, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::Unavailable {
                store,
                reason: "`setpriv` (util-linux) is not installed; it runs the server as an unprivileged user"
                    .to_owned(),
            }),
            Err(e) => Err(spawn_error(store, &self.program, e)),
        }
    }

    /// Runs it to completion within `limit`, its output appended to `log`.
    pub(crate) fn run(&self, store: &'static str, log: &Path, limit: Duration) -> Result<(), StoreError> {
        let mut child = self.spawn(store, log)?;
        let name = self
            .program
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match wait_until(&mut child, Instant::now() + limit) {
            Ok(Some(status)) if status.success() => Ok(()),
            Ok(Some(status)) => Err(StoreError::Start {
                store,
                reason: format!("{name} exited with {status}: {}", log_tail(log)),
            }),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(StoreError::Start {
                    store,
                    reason: format!("{name} did not finish within {limit:?}: {}", log_tail(log)),
                })
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(StoreError::io(format!("wait for {name}"))(e))
            }
        }
    }
}

/// Runs `program --version`, so that a missing or unusable binary is `Unavailable` before
/// anything is started.
fn probe(store: &'static str, program: &Path) -> Result<(), StoreError> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| spawn_error(store, program, e))?;
    match wait_until(&mut child, Instant::now() + Duration::from_secs(30)) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(StoreError::Unavailable {
            store,
            reason: format!("`{} --version` exited with {status}", program.display()),
        }),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(StoreError::Unavailable {
                store,
                reason: format!("`{} --version` did not answer", program.display()),
            })
        }
    }
}

fn spawn_error(store: &'static str, program: &Path, err: io::Error) -> StoreError {
    match err.kind() {
        io::ErrorKind::NotFound => StoreError::Unavailable {
            store,
            reason: format!("`{}` not found", program.display()),
        },
        io::ErrorKind::PermissionDenied => StoreError::Unavailable {
            store,
            reason: format!("no permission to run `{}`", program.display()),
        },
        _ => StoreError::io(format!("start {}", program.display()))(err),
    }
}

/// Waits for `child` until `deadline`; `None` if it still runs then.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// The last few lines of a log file, for error messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(no output)".to_owned()
    } else {
        tail
    }
}

/// A running server, our child; dropping it stops it (`stop_signal`, then SIGKILL after
/// `grace`) and reaps it.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    stamp: PidStamp,
    stop_signal: Signal,
    grace: Duration,
}

impl ServerProcess {
    /// Starts `launch` in `dir`, its output in `dir/log_name`, and writes the server pid file.
    pub(crate) fn start(
        store: &'static str,
        launch: &Launch,
        dir: &WorkDir,
        log_name: &str,
        stop_signal: Signal,
        grace: Duration,
    ) -> Result<ServerProcess, StoreError> {
        let mut child = launch.spawn(store, &dir.path().join(log_name))?;
        let Some(stamp) = PidStamp::of(child.id()) else {
            // It exited at once; reap it and report what it said.
            let status = child.wait().map_err(StoreError::io("wait for the server"))?;
            return Err(StoreError::Start {
                store,
                reason: format!("exited with {status}: {}", log_tail(&dir.path().join(log_name))),
            });
        };
        let server = ServerProcess {
            child,
            stamp,
            stop_signal,
            grace,
        };
        write_pid_file(&dir.path().join(SERVER_FILE), stamp)?;
        Ok(server)
    }

    /// The server's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.stamp.pid
    }

    /// `Some(status)` once the server has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops and reaps the server.
    pub(crate) fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = Pid::from_raw(self.stamp.pid as i32) {
            let _ = rustix::process::kill_process(pid, self.stop_signal);
        }
        if !matches!(wait_until(&mut self.child, Instant::now() + self.grace), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What [`sweep_stale`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Work folders removed (their owner was gone).
    pub removed: Vec<PathBuf>,
    /// Servers of those folders that still ran and were killed.
    pub killed: Vec<u32>,
    /// Work folders left alone because their owner still runs.
    pub n_in_use: usize,
}

/// Removes the stale store work folders in `dir`: those whose owning process no longer runs
/// (killed with SIGKILL, say). Their server is killed first if it still runs, and a
/// PostgreSQL cluster's System V segment is removed. Folders of running owners, and anything
/// not named [`WORK_DIR_PREFIX`]`*`, are left alone. A missing `dir` is an empty sweep.
///
/// # Errors
///
/// `Io` if `dir` cannot be listed or a stale folder cannot be removed.
pub fn sweep_stale(dir: &Path) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(err) => return Err(StoreError::io(format!("list {}", dir.display()))(err)),
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let is_ours = entry.file_name().to_string_lossy().starts_with(WORK_DIR_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_ours {
            continue;
        }
        let stale = match PidStamp::read_file(&path.join(OWNER_FILE)) {
            Some(owner) => !owner.is_running(),
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| SystemTime::now().duration_since(modified).unwrap_or_default() > UNOWNED_GRACE),
        };
        if !stale {
            report.n_in_use += 1;
            continue;
        }
        if let Some(server) = PidStamp::read_file(&path.join(SERVER_FILE)).filter(|s| s.is_running()) {
            server.kill_and_wait();
            report.killed.push(server.pid);
        }
        crate::postgres::remove_stale_segment(&path);
        fs::remove_dir_all(&path).map_err(StoreError::io(format!("remove {}", path.display())))?;
        report.removed.push(path);
    }
    Ok(report)
}

/// Flushes and closes a file we wrote (so a server that reads it sees all of it).
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(StoreError::io(format!("create {}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_stamp_runs_and_a_reaped_child_does_not() {
        let me = PidStamp::of(std::process::id()).expect("we are in /proc");
        assert!(me.is_running());
        assert!(
            !PidStamp {
                start_time: me.start_time + 1,
                ..me
            }
            .is_running()
        );
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap");
        assert!(PidStamp::of(pid).is_none_or(|s| !s.is_running()));
    }

    #[test]
    fn pid_files_round_trip() {
        let stamp = PidStamp {
            pid: 12,
            start_time: 345,
        };
        assert_eq!(PidStamp::parse(&stamp.to_line()), Some(stamp));
        assert_eq!(PidStamp::parse("garbage"), None);
    }

    #[test]
    fn root_exists_in_passwd() {
        assert_eq!(SystemUser::lookup("root").map(|u| u.uid), Some(0));
        assert_eq!(SystemUser::lookup("no-such-user-here"), None);
    }
}
