//! Where a run's files go, written so that a reader never sees a half-written result.
//!
//! Files are written into a staging folder and moved into place at the end: for the default
//! `results/<name>-<UTC time>/`, the staging folder itself is renamed; for `--out DIR`, each
//! file is renamed into DIR. After every trial the record so far is saved in the staging
//! folder, so a run that is interrupted (Ctrl-C) or dies keeps what it completed: an
//! interrupted run moves its record to `<dir>/partial/run.json`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ipcbench_record::RunRecord;

/// The output folder of one run.
pub struct RunOutput {
    final_dir: PathBuf,
    staging: PathBuf,
    /// True when `final_dir` existed before (`--out` to an existing folder).
    merge_into_existing: bool,
    /// The exclusive lock on `final_dir` (held while the file is open), and its path.
    lock: (fs::File, PathBuf),
}

/// `<parent>/.<name>.lock` for `dir`: beside the folder, so it exists before the folder does.
fn lock_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    dir.with_file_name(format!(".{name}.lock"))
}

/// Takes the exclusive lock on `dir`, or says which run holds it.
fn lock(dir: &Path) -> Result<(fs::File, PathBuf)> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = lock_path(dir);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(crate::UsageError(format!(
                "--out {} is in use by another run (pid {}); wait for it to finish or choose another --out",
                dir.display(),
                if holder.is_empty() { "unknown" } else { holder }
            ))
            .into());
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok((file, path))
}

fn utc_stamp() -> String {
    // 2026-11-26T05:56:50Z -> 20261126T055650Z
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "")
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
}

impl RunOutput {
    /// Prepares the staging folder for a run named `name`, after taking the exclusive lock on
    /// the output folder. An existing non-empty `--out` folder is refused unless `force`.
    ///
    /// # Errors
    /// A [`crate::UsageError`] when the folder is locked by another run, is not a folder, or is
    /// not empty without `force`.
    pub fn create(name: &str, out: Option<&Path>, force: bool) -> Result<RunOutput> {
        let final_dir = match out {
            Some(dir) => dir.to_owned(),
            None => PathBuf::from("results").join(format!("{name}-{}", utc_stamp())),
        };
        let merge_into_existing = final_dir.exists();
        if merge_into_existing && !final_dir.is_dir() {
            return Err(
                crate::UsageError(format!("--out {} exists and is not a directory", final_dir.display())).into(),
            );
        }
        let lock = lock(&final_dir)?;
        let non_empty = fs::read_dir(&final_dir).is_ok_and(|mut entries| entries.next().is_some());
        if non_empty && !force {
            let _ = fs::remove_file(&lock.1);
            return Err(crate::UsageError(format!(
                "--out {} exists and is not empty; choose another folder, or give --force to write into it \
                 (files of the same name are replaced)",
                final_dir.display()
            ))
            .into());
        }
        let staging = if merge_into_existing {
            final_dir.join(format!(".staging-{}", std::process::id()))
        } else {
            let file_name = final_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            final_dir.with_file_name(format!(".{file_name}.staging-{}", std::process::id()))
        };
        fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
        Ok(RunOutput {
            final_dir,
            staging,
            merge_into_existing,
            lock,
        })
    }

    /// Where the results will be.
    pub fn final_dir(&self) -> &Path {
        &self.final_dir
    }

    /// The lock file's path (removed by [`RunOutput::finish`]).
    pub fn lock_file(&self) -> &Path {
        &self.lock.1
    }

    /// Where an interrupted or dead run's completed cases go.
    pub fn partial_dir(&self) -> PathBuf {
        self.final_dir.join("partial")
    }

    /// The staging folder, where renderers write before the move.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// Saves the record so far (after every trial).
    pub fn save_partial(&mut self, record: &RunRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).context("cannot serialize the record")?;
        write_atomically(&self.staging.join("run.json"), &json)
    }

    /// Writes the final record and moves everything into place; returns the folder holding
    /// `run.json` (`<dir>/partial` for an interrupted run).
    pub fn finish(self, record: &RunRecord) -> Result<PathBuf> {
        let json = serde_json::to_vec_pretty(record).context("cannot serialize the record")?;
        write_atomically(&self.staging.join("run.json"), &json)?;
        let target = if record.interrupted {
            self.final_dir.join("partial")
        } else {
            self.final_dir.clone()
        };
        if self.merge_into_existing || record.interrupted {
            fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
            move_contents(&self.staging, &target)?;
            fs::remove_dir_all(&self.staging).with_context(|| format!("cannot remove {}", self.staging.display()))?;
        } else {
            if let Some(parent) = self.final_dir.parent() {
                fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            fs::rename(&self.staging, &self.final_dir)
                .with_context(|| format!("cannot move results into {}", self.final_dir.display()))?;
        }
        let _ = fs::remove_file(&self.lock.1);
        Ok(target)
    }
}

fn move_contents(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if dest.is_dir() && entry.path().is_dir() {
            move_contents(&entry.path(), &dest)?;
        } else {
            fs::rename(entry.path(), &dest).with_context(|| format!("cannot move {} into place", dest.display()))?;
        }
    }
    Ok(())
}
