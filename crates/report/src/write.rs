//! Writing output files so that a reader never sees half of one.

use std::path::Path;

use crate::ReportError;

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
///
/// # Errors
/// [`ReportError::Write`] naming the file.
pub(crate) fn atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let fail = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Creates `dir` and its parents.
///
/// # Errors
/// [`ReportError::Write`] naming the folder.
pub(crate) fn folder(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_owned(),
        source,
    })
}
