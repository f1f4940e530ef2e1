//! `--set KEY=VALUE`: a command-line override of any plan key by its dotted path
//! (`transport.null.delay_ns=400`, `scenario.0.message_bytes=64`, `duration=200ms`), applied
//! to the parsed TOML document before the plan is validated, so a bad value is refused with the
//! plan's own message, naming the `--set`.

use std::fmt;
use std::str::FromStr;

/// One `--set KEY=VALUE`: a dotted path into the plan document and the value to put there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSet {
    /// The path, split at dots: table keys, and indices into arrays (`scenario.0`).
    pub path: Vec<String>,
    /// The value as given on the command line.
    pub value: String,
}

impl fmt::Display for PlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--set {}={}", self.path.join("."), self.value)
    }
}

impl FromStr for PlanSet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("--set {text}: expected KEY=VALUE, e.g. --set transport.null.delay_ns=400"))?;
        let path: Vec<String> = key.trim().split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "--set {text}: `{key}` is not a dotted key path like transport.null.delay_ns or scenario.0.message_bytes"
            ));
        }
        Ok(PlanSet {
            path,
            value: value.trim().to_owned(),
        })
    }
}

impl PlanSet {
    /// The value as TOML: anything TOML reads as a value (`400`, `true`, `["null"]`,
    /// `"hybrid"`), else the text as a string (`200ms`, `hybrid`).
    fn toml_value(&self) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("value = {}", self.value))
            .ok()
            .and_then(|mut t| t.remove("value"))
            .unwrap_or_else(|| toml::Value::String(self.value.clone()))
    }

    /// Puts the value at the path in `document`, creating missing tables on the way.
    ///
    /// # Errors
    /// A message (without the `--set` itself) when the path runs through a value that is not a
    /// table or an array, or indexes past an array's end.
    pub fn apply(&self, document: &mut toml::Table) -> Result<(), String> {
        let value = self.toml_value();
        let (last, parents) = self.path.split_last().expect("a path has at least one key");
        // Walk a copy, so that an error leaves `document` as it was.
        let mut root = toml::Value::Table(document.clone());
        let mut current = &mut root;
        let mut walked = Vec::new();
        for key in parents {
            walked.push(key.as_str());
            current = step(current, key, &walked)?;
        }
        walked.push(last);
        match current {
            toml::Value::Table(table) => {
                table.insert(last.clone(), value);
            }
            toml::Value::Array(items) => {
                let idx = index(last, items.len(), &walked)?;
                items[idx] = value;
            }
            _ => return Err(format!("`{}` is not a table", walked[..walked.len() - 1].join("."))),
        }
        if let toml::Value::Table(table) = root {
            *document = table;
        }
        Ok(())
    }
}

fn index(key: &str, len: usize, walked: &[&str]) -> Result<usize, String> {
    let array = walked[..walked.len() - 1].join(".");
    let idx: usize = key.parse().map_err(|_| {
        format!(
            "`{array}` is a list; index it with a number from 0 to {}",
            len.saturating_sub(1)
        )
    })?;
    if idx >= len {
        return Err(format!(
            "`{array}` has {len} entries; there is no entry {idx} (they count from 0)"
        ));
    }
    Ok(idx)
}

fn step<'a>(current: &'a mut toml::Value, key: &str, walked: &[&str]) -> Result<&'a mut toml::Value, String> {
    match current {
        toml::Value::Table(table) => Ok(table
            .entry(key.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))),
        toml::Value::Array(items) => {
            let idx = index(key, items.len(), walked)?;
            Ok(&mut items[idx])
        }
        _ => Err(format!("`{}` is not a table", walked[..walked.len() - 1].join("."))),
    }
}
