//! Nothing left behind: a watcher process that cleans up after a run killed with `kill -9`,
//! and a sweep at start-up for what an older dead run left.
//!
//! A run starts `ipcbench cleanup` (hidden) in a process group of its own (so a Ctrl-C at the
//! terminal does not reach it) with a pipe as its stdin, and keeps the pipe's write end open
//! for its whole life. A run that ends normally writes `done` and closes it; the watcher then
//! exits and does nothing. When the run dies without that (any signal, including `kill -9`),
//! the pipe closes unwritten: the watcher waits for the peers to die (they die with their
//! parent), then removes the run's work directory and lock file, keeps the completed cases by
//! moving the staging folder's `run.json` to `<out>/partial/`, removes the staging folder and
//! any network namespace the dead run made.
//!
//! The watcher also sweeps the stale store folders of `balance` beside the work directory
//! (`ipcbench_store::sweep_stale`), so a killed run leaves no store file either.
//!
//! Every work directory carries an `owner.pid`; [`sweep`] removes work directories, staging
//! folders and namespaces whose owner is gone, in case a watcher itself was killed.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

/// The file naming the process that owns a work directory or lock.
pub const OWNER_FILE: &str = "owner.pid";
/// What a run writes to its watcher when it ended normally.
const DONE: &[u8] = b"done\n";

/// The paths one run may leave behind.
#[derive(Debug, Clone, Default)]
pub struct Leftovers {
    /// The private work directory (socket files, FIFOs).
    pub work_dir: Option<PathBuf>,
    /// The staging folder of the output.
    pub staging: Option<PathBuf>,
    /// Where the completed cases of a dead run go (`<out>/partial`).
    pub partial: Option<PathBuf>,
    /// The output lock file.
    pub lock: Option<PathBuf>,
}

/// The write end of the watcher's pipe; writing `done` dismisses the watcher.
pub struct Watcher {
    pipe: Option<std::io::PipeWriter>,
}

impl Watcher {
    /// Starts the watcher for `leftovers` of this process.
    ///
    /// # Errors
    /// The watcher process cannot be started.
    pub fn start(leftovers: &Leftovers) -> Result<Watcher> {
        use std::os::unix::process::CommandExt as _;
        let (reader, writer) = std::io::pipe().context("cannot make the clean-up pipe")?;
        let spec = json!({
            "owner": std::process::id(),
            "work_dir": leftovers.work_dir,
            "staging": leftovers.staging,
            "partial": leftovers.partial,
            "lock": leftovers.lock,
        });
        Command::new(std::env::current_exe().context("cannot find the running binary")?)
            .arg("cleanup")
            .arg("--spec")
            .arg(spec.to_string())
            .stdin(reader)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own: a Ctrl-C at the terminal interrupts the run, not its watcher.
            .process_group(0)
            .spawn()
            .context("cannot start the clean-up watcher")?;
        Ok(Watcher { pipe: Some(writer) })
    }

    /// The run ended normally and cleaned up itself: dismiss the watcher.
    pub fn dismiss(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(DONE);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.dismiss();
    }
}

/// The hidden `ipcbench cleanup`: waits for its owner to end, and cleans up if the owner died.
pub fn watch(spec: &str) -> Result<()> {
    let spec: serde_json::Value = serde_json::from_str(spec).context("bad clean-up spec")?;
    let mut said = Vec::new();
    // Blocks until the owner writes `done` and closes the pipe, or dies (EOF, nothing said).
    let _ = std::io::stdin().lock().read_to_end(&mut said);
    if said.starts_with(DONE) {
        return Ok(());
    }
    let path = |key: &str| spec.get(key).and_then(|v| v.as_str()).map(PathBuf::from);
    // The peers die with their parent (PR_SET_PDEATHSIG); give them a moment to go.
    std::thread::sleep(Duration::from_millis(300));
    // The stores of `balance` keep their folders beside the work directory: their servers died
    // with the run (a death signal), and this removes the folders (and any server that did not).
    if let Some(parent) = path("work_dir").as_deref().and_then(Path::parent) {
        let _ = ipcbench_store::sweep_stale(parent);
    }
    clean_dead_run(
        path("work_dir").as_deref(),
        path("staging").as_deref(),
        path("partial").as_deref(),
        path("lock").as_deref(),
    );
    ipcbench_harness::netns::remove_stale_namespaces();
    Ok(())
}

/// Removes a dead run's files, keeping its completed cases.
fn clean_dead_run(work_dir: Option<&Path>, staging: Option<&Path>, partial: Option<&Path>, lock: Option<&Path>) {
    if let Some(dir) = work_dir {
        let _ = fs::remove_dir_all(dir);
    }
    if let Some(staging) = staging {
        keep_partial(staging, partial);
        let _ = fs::remove_dir_all(staging);
    }
    if let Some(lock) = lock {
        let _ = fs::remove_file(lock);
    }
}

/// Moves `staging/run.json` (the completed cases) to `partial/run.json`.
fn keep_partial(staging: &Path, partial: Option<&Path>) {
    let record = staging.join("run.json");
    if let (true, Some(partial)) = (record.is_file(), partial)
        && fs::create_dir_all(partial).is_ok()
    {
        let _ = fs::rename(&record, partial.join("run.json"));
    }
}

/// True when `pid` is a live ipcbench process.
pub fn alive(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("ipcbench"))
        .unwrap_or(false)
}

fn owner_of(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(OWNER_FILE)).ok()?.trim().parse().ok()
}

/// Removes what earlier runs that died without their watcher left: work directories under
/// the temp dir and staging folders under `out_parent` whose owner is gone (their completed
/// cases are moved to `<out>/partial/`), and namespaces of dead runs. Returns what it did.
pub fn sweep(out_parent: &Path) -> Vec<String> {
    let done = sweep_in(&std::env::temp_dir(), out_parent);
    ipcbench_harness::netns::remove_stale_namespaces();
    done
}

/// [`sweep`] with the temp dir given: work directories under `temp`, staging folders under
/// `out_parent` (the tests point `temp` at a folder of their own, so that a dead run of a
/// concurrent test is not theirs to count).
fn sweep_in(temp: &Path, out_parent: &Path) -> Vec<String> {
    let mut done = Vec::new();
    if let Ok(entries) = fs::read_dir(temp) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("ipcbench-")
                && path.is_dir()
                && let Some(pid) = owner_of(&path)
                && !alive(pid)
                && fs::remove_dir_all(&path).is_ok()
            {
                done.push(format!("removed {} (left by dead run {pid})", path.display()));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(out_parent) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `.<dir>.staging-<pid>` beside the final folder.
            let Some((final_name, pid)) = name
                .strip_prefix('.')
                .and_then(|n| n.rsplit_once(".staging-"))
                .and_then(|(f, pid)| Some((f.to_owned(), pid.parse::<u32>().ok()?)))
            else {
                continue;
            };
            if alive(pid) {
                continue;
            }
            let staging = entry.path();
            let partial = out_parent.join(&final_name).join("partial");
            keep_partial(&staging, Some(&partial));
            if fs::remove_dir_all(&staging).is_ok() {
                done.push(format!(
                    "removed {} (left by dead run {pid}; its completed cases, if any, are in {})",
                    staging.display(),
                    partial.display()
                ));
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_runs_staging_folder_keeps_its_cases_in_partial() {
        let parent = tempfile::tempdir().unwrap();
        // pid 4194304 is above the kernel's pid limit: never alive.
        let staging = parent.path().join(".smoke-1.staging-4194304");
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("run.json"), "{}").unwrap();
        let temp = tempfile::tempdir().unwrap();
        let dead_work = temp.path().join("ipcbench-dead");
        fs::create_dir_all(&dead_work).unwrap();
        fs::write(dead_work.join(OWNER_FILE), "4194304").unwrap();
        let done = sweep_in(temp.path(), parent.path());
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(!dead_work.exists());
        assert!(!staging.exists());
        assert_eq!(
            fs::read_to_string(parent.path().join("smoke-1/partial/run.json")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_live_runs_folders_are_left_alone() {
        let parent = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let live_work = temp.path().join("ipcbench-live");
        fs::create_dir_all(&live_work).unwrap();
        fs::write(live_work.join(OWNER_FILE), std::process::id().to_string()).unwrap();
        let staging = parent.path().join(format!(".smoke-1.staging-{}", std::process::id()));
        fs::create_dir_all(&staging).unwrap();
        assert!(sweep_in(temp.path(), parent.path()).is_empty());
        assert!(staging.exists());
        assert!(live_work.exists());
    }
}
