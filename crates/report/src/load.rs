//! Reading a `run.json` back, with an error that says what is wrong and where.

use std::path::Path;

use ipcbench_record::{RunRecord, SCHEMA};

use crate::ReportError;

/// Reads and checks a run record written by `ipcbench run`.
///
/// # Errors
/// [`ReportError::Read`] when the file cannot be read, [`ReportError::Json`] when it is not
/// JSON, [`ReportError::NotARecord`] when its `schema` is missing or not
/// [`SCHEMA`](ipcbench_record::SCHEMA), [`ReportError::Schema`] when a field is
/// missing or mistyped (the message names the field, line and column).
pub fn load_record(path: &Path) -> Result<RunRecord, ReportError> {
    let read_error = |source| ReportError::Read {
        path: path.to_owned(),
        source,
    };
    // Checked before opening: opening a FIFO would block until a writer appears.
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(ReportError::NotARecord {
            path: path.to_owned(),
            detail: "it is not a regular file (a directory, FIFO, socket or device)".into(),
        });
    }
    if meta.len() > MAX_RECORD_BYTES {
        return Err(ReportError::NotARecord {
            path: path.to_owned(),
            detail: format!(
                "it has {} bytes; a record may have at most {MAX_RECORD_BYTES}",
                meta.len()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    parse_record(&text, path)
}

/// The largest `run.json` read (a record of thousands of cases with histograms stays far below).
pub const MAX_RECORD_BYTES: u64 = 1 << 30;

/// Parses the text of a run record; `path` is only used in error messages.
///
/// # Errors
/// As [`load_record`], except for reading.
pub fn parse_record(text: &str, path: &Path) -> Result<RunRecord, ReportError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|source| ReportError::Json {
        path: path.to_owned(),
        source,
    })?;
    let not_a_record = |detail: String| ReportError::NotARecord {
        path: path.to_owned(),
        detail,
    };
    let object = value
        .as_object()
        .ok_or_else(|| not_a_record(format!("the top level is {}, not an object", kind_of(&value))))?;
    match object.get("schema") {
        None => {
            return Err(not_a_record(format!(
                "it has no `schema` field (expected \"{SCHEMA}\")"
            )));
        }
        Some(serde_json::Value::String(schema)) if schema == SCHEMA => {}
        Some(other) => {
            return Err(not_a_record(format!(
                "its schema is {other}, this version reads \"{SCHEMA}\""
            )));
        }
    }
    serde_json::from_str(text).map_err(|source| ReportError::Schema {
        path: path.to_owned(),
        source,
    })
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = parse_record(text, Path::new("x/run.json")).unwrap_err();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        message
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let message = err("{\n  \"schema\": \"ipcbench.run/1\",\n  oops\n}");
        assert!(message.contains("x/run.json is not valid JSON"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn foreign_json_is_not_a_record() {
        assert!(err("[1, 2]").contains("the top level is an array"));
        assert!(err("{\"name\": \"x\"}").contains("no `schema` field"));
        assert!(err("{\"schema\": \"ipcbench.run/9\"}").contains("\"ipcbench.run/9\""));
    }

    #[test]
    fn missing_field_is_a_schema_error_naming_the_field() {
        let message = err("{\"schema\": \"ipcbench.run/1\", \"name\": \"x\"}");
        assert!(message.contains("does not match the run record schema"), "{message}");
        assert!(message.contains("missing field"), "{message}");
    }
}
