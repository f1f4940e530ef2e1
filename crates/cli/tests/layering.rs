//! The layering rules of ARCHITECTURE.md, checked over the source: no module of the record,
//! gate, harness or report crate uses a module that (directly or through others in its
//! crate) uses it back, and the crates depend on each other in one direction only.
//!
//! A module's uses are read from its `use` lines and from every `crate::`, `self::`,
//! `super::` or child-module path in its code (comments, strings and `#[cfg(test)] mod tests`
//! left out). A path through a `pub use` re-export counts as a use of the module the item
//! comes from, so a parent that only re-exports its children is not in a circle with them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every module file under `src`, keyed by its module path (`["chart", "frame"]`).
fn module_files(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("lib" | "main" | "mod")) {
                module.pop();
            }
            // A sibling `tests.rs` of a module is that module's test code.
            if module.len() > 1 && module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            out.insert(module, path);
        }
    }
    out
}

/// The code of a file without comments, string and char literals, and its test module.
fn code(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if bytes.get(i + 1) == Some(&b'#') || (bytes.get(i + 1) == Some(&b'"') && !ident_before(bytes, i)) => {
                // A raw string: r"..." or r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while bytes.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if bytes.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                while j < bytes.len() && !bytes[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') || (bytes.get(i + 1) == Some(&b'\\')) => {
                // A char literal ('x' or '\n'); lifetimes have no closing quote.
                let mut j = i + 1;
                if bytes[j] == b'\\' {
                    j += 2;
                }
                while j < bytes.len() && bytes[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            }
            _ => {
                let ch = text[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if let Some(at) = find_test_module(&out) {
        out.truncate(at);
    }
    out
}

fn ident_before(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
}

fn find_test_module(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]") {
        let at = from + at;
        let rest = code[at + "#[cfg(test)]".len()..].trim_start();
        let rest = rest.strip_prefix("#[path = \"\"]").map(str::trim_start).unwrap_or(rest);
        if rest.starts_with("mod tests") || rest.starts_with("pub mod tests") {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The paths a `use` tree names, `as` aliases kept as `path@alias`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.replace(" as ", "@").replace(' ', "");
    expand(&tree)
}

fn expand(tree: &str) -> Vec<String> {
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = tree[..open].trim_end_matches(':');
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.to_owned()
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// `use` statements of a file's code: the text between `use` and `;`.
fn use_statements(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(at) = code[i..].find("use ") {
        let at = i + at;
        i = at + 4;
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let Some(end) = code[at..].find(';') else { break };
        let before = code[..at].trim_end();
        let public = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        out.push((public, code[at + 4..at + end].to_owned()));
    }
    out
}

/// Every `a::b::c` path in the code that starts with a word.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let boundary = i == 0 || !(word(chars[i - 1]) || chars[i - 1] == ':');
        if boundary && (chars[i].is_alphabetic() || chars[i] == '_') {
            let start = i;
            while i < chars.len() && (word(chars[i]) || (chars[i] == ':' && chars.get(i + 1) == Some(&':'))) {
                i += if chars[i] == ':' { 2 } else { 1 };
            }
            let path: String = chars[start..i].iter().collect();
            // `a::{b, c}` is a use tree, read from the `use` statement; a path is whole here.
            if path.contains("::") && !path.ends_with("::") {
                out.push(path);
            }
        } else {
            i += 1;
        }
    }
    out
}

struct Crate {
    modules: BTreeMap<Module, String>,
    /// Per module: re-exported name -> the path it re-exports.
    reexports: BTreeMap<Module, BTreeMap<String, String>>,
}

enum Resolved {
    Module(Module),
    External,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let modules: BTreeMap<Module, String> = module_files(src)
            .into_iter()
            .map(|(m, path)| (m, code(&std::fs::read_to_string(path).unwrap())))
            .collect();
        let mut reexports = BTreeMap::new();
        for (module, code) in &modules {
            let mut names = BTreeMap::new();
            for (public, tree) in use_statements(code) {
                if !public {
                    continue;
                }
                for path in expand_use(&tree) {
                    let (path, alias) = path.split_once('@').unwrap_or((&path, ""));
                    let name = if alias.is_empty() {
                        path.rsplit("::").next().unwrap()
                    } else {
                        alias
                    };
                    names.insert(name.to_owned(), path.to_owned());
                }
            }
            reexports.insert(module.clone(), names);
        }
        Crate { modules, reexports }
    }

    fn resolve(&self, from: &Module, path: &str, depth: usize) -> Option<Resolved> {
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Module = match segments.first()? {
            &"crate" => {
                segments.remove(0);
                Vec::new()
            }
            &"super" => {
                let mut base = from.clone();
                while segments.first() == Some(&"super") {
                    base.pop();
                    segments.remove(0);
                }
                base
            }
            &"self" => {
                segments.remove(0);
                from.clone()
            }
            first => {
                let mut child = from.clone();
                child.push((*first).to_owned());
                if self.modules.contains_key(&child) {
                    from.clone()
                } else if depth > 0 {
                    return Some(Resolved::External);
                } else {
                    return None;
                }
            }
        };
        for segment in segments {
            let mut next = base.clone();
            next.push(segment.to_owned());
            if self.modules.contains_key(&next) {
                base = next;
                continue;
            }
            if depth < 5
                && let Some(target) = self.reexports.get(&base).and_then(|r| r.get(segment))
            {
                return self.resolve(&base, target, depth + 1);
            }
            break;
        }
        Some(Resolved::Module(base))
    }

    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges = BTreeMap::new();
        for (module, code) in &self.modules {
            let mut uses = BTreeSet::new();
            let mut add = |path: &str| {
                if let Some(Resolved::Module(target)) = self.resolve(module, path, 0)
                    && &target != module
                {
                    uses.insert(target);
                }
            };
            for (_, tree) in use_statements(code) {
                for path in expand_use(&tree) {
                    add(path.split('@').next().unwrap());
                }
            }
            for path in paths(code) {
                add(&path);
            }
            edges.insert(module.clone(), uses);
        }
        edges
    }
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.edges[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.out
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("/")
    }
}

#[test]
fn no_module_uses_a_module_that_uses_it_back() {
    let mut found = Vec::new();
    for krate in ["record", "gate", "harness", "report"] {
        let parsed = Crate::read(&workspace().join("crates").join(krate).join("src"));
        let edges = parsed.edges();
        for circle in circles(&edges) {
            let members: BTreeSet<&Module> = circle.iter().collect();
            let lines: Vec<String> = circle
                .iter()
                .map(|m| {
                    let uses: Vec<String> = edges[m].iter().filter(|u| members.contains(u)).map(name).collect();
                    format!("    {} uses {}", name(m), uses.join(", "))
                })
                .collect();
            found.push(format!(
                "crates/{krate}: a circle of {} modules:\n{}",
                circle.len(),
                lines.join("\n")
            ));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_finds_a_planted_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("chart")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod chart;\npub use chart::Thing;\n").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::chart::frame::Frame; // not a use: crate::b\n",
    )
    .unwrap();
    std::fs::write(
        src.join("chart/mod.rs"),
        "mod frame;\nmod style;\npub use frame::Thing;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("chart/frame.rs"),
        "use super::style::Legend;\npub struct Thing;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("chart/style.rs"),
        "pub struct Legend;\nfn f() -> crate::Thing { let s = \"super::frame\"; todo!() }\n",
    )
    .unwrap();
    let edges = Crate::read(src).edges();
    let found = circles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    let members: BTreeSet<String> = found[0].iter().map(name).collect();
    // `crate::Thing` is a re-export of chart/frame's item: style uses frame, frame uses style.
    assert_eq!(
        members,
        ["chart/frame", "chart/style"].map(String::from).into_iter().collect()
    );
    assert!(
        !edges[&vec!["a".to_owned()]].contains(&Vec::new()),
        "a comment is no use"
    );
}

/// The `ipcbench-*` crates a manifest depends on (normal dependencies only).
fn workspace_dependencies(krate: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut out = BTreeSet::new();
    let mut in_dependencies = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies
            && let Some(name) = line
                .split(['.', ' ', '='])
                .next()
                .filter(|n| n.starts_with("ipcbench-"))
        {
            out.insert(name.to_owned());
        }
    }
    out
}

#[test]
fn crates_depend_on_each_other_in_one_direction() {
    let allowed: [(&str, &[&str]); 10] = [
        ("core", &[]),
        ("tcp", &["ipcbench-core"]),
        ("uds", &["ipcbench-core"]),
        ("pipe", &["ipcbench-core"]),
        ("shm", &["ipcbench-core"]),
        ("record", &[]),
        ("gate", &["ipcbench-record"]),
        ("report", &["ipcbench-record"]),
        ("http", &[]),
        (
            "harness",
            &[
                "ipcbench-core",
                "ipcbench-record",
                "ipcbench-gate",
                "ipcbench-http",
                "ipcbench-store",
            ],
        ),
    ];
    for (krate, may_use) in allowed {
        let uses = workspace_dependencies(krate);
        let extra: Vec<&String> = uses.iter().filter(|u| !may_use.contains(&u.as_str())).collect();
        assert!(
            extra.is_empty(),
            "crates/{krate} depends on {extra:?}; it may use only {may_use:?}"
        );
    }
}
