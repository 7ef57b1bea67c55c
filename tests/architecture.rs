//! The workspace's shape, checked against its sources: the engine's files (and its top-level
//! modules) use one another without a circle, and ARCHITECTURE.md names every crate, every
//! arrow between crates and every source file as they are on disk.
//!
//! Reads files only and uses none of the engine's code, so that what it checks is what a reader
//! of the sources and of the doc sees; each failure names the files to look at.
//!
//! Why circles matter: a circle of files is one unit that can only be read, tested and changed
//! together, whatever its module boundaries claim. The graph is the one a reader follows: file A
//! uses file B when A's code names B's module path (`use crate::x::y`, `super::y::f()`,
//! `self::sub`, a child module named from its parent). Declaring a child (`mod x;`) is not a
//! use; a parent re-exporting a child's item (`pub use x::Thing`) is, so a child that reaches its
//! sibling through the parent's re-export (`super::Thing`) closes a circle with the parent.
//! Test modules (`#[cfg(test)] mod tests`) count like any other code.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, as paths relative to it with `/` separators, sorted.
fn rust_files(dir: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).unwrap();
                let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.insert(parts.join("/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Rust sources, as far as paths are concerned
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

/// Where the raw string (`r"..."`, `r#"..."#`, `br"..."`) starting at `i` ends, or None when
/// none starts there.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let r = if c.get(i) == Some(&'b') { i + 1 } else { i };
    if c.get(r) != Some(&'r') {
        return None;
    }
    let hashes = c[r + 1..].iter().take_while(|&&ch| ch == '#').count();
    let open = r + 1 + hashes;
    if c.get(open) != Some(&'"') {
        return None;
    }
    let close = (open + 1..c.len())
        .find(|&j| c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')))?;
    Some(close + 1 + hashes)
}

/// Tokens with their line numbers. Comments (doc comments included), string, byte-string, raw
/// string and character literals are dropped, so that a path in prose or in a message is not a
/// use; numbers are dropped too.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let ident_start = |ch: char| ch.is_alphabetic() || ch == '_';
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\n' {
                    line += 1;
                }
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ch == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a, 'static).
            if next == Some('\\') {
                // Past the backslash and the character it escapes (which may be a quote).
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&c, i) {
            line += c[i..end].iter().filter(|&&ch| ch == '\n').count();
            i = end;
        } else if ch == 'b' && (next == Some('"') || next == Some('\'')) {
            // A byte string or byte: lexed as the literal it prefixes.
            i += 1;
        } else if ch == 'r' && next == Some('#') && c.get(i + 2).is_some_and(|&n| ident_start(n)) {
            // A raw identifier, `r#type`.
            let start = i + 2;
            i = start;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            toks.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ident_start(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            toks.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch.is_ascii_digit() {
            while i < c.len()
                && (ident_char(c[i])
                    || (c[i] == '.' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
        } else if ch == ':' && next == Some(':') {
            toks.push((Tok::Sep, line));
            i += 2;
        } else {
            toks.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    toks
}

fn ident(tok: Option<&(Tok, usize)>) -> Option<&str> {
    match tok {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// The paths of one `use` tree starting at `toks[*i]`, each as its segments (a group's `self`
/// is its prefix; a glob is its prefix); leaves `*i` at the token that ends it.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(*i).map(|t| &t.0) {
            // `as name`: the alias is not part of the path.
            Some(Tok::Ident(s)) if s == "as" => *i += 2,
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
            }
            Some(Tok::Sep | Tok::Punct('*')) => *i += 1,
            Some(Tok::Punct('{')) => {
                *i += 1;
                while toks.get(*i).map(|t| &t.0) != Some(&Tok::Punct('}')) {
                    use_tree(toks, i, &path, out);
                    match toks.get(*i).map(|t| &t.0) {
                        Some(Tok::Punct(',')) => *i += 1,
                        Some(Tok::Punct('}')) => {}
                        other => panic!("unexpected {other:?} in a use group"),
                    }
                }
                *i += 1;
                return;
            }
            // `,`, `}` or `;`: the end of this tree, which the caller consumes.
            _ => {
                if !path.is_empty() {
                    out.push(path);
                }
                return;
            }
        }
    }
}

/// One reference from a file to a module path, with the line it is on.
struct Reference {
    /// Absolute module path (`crate` is the empty path).
    path: Vec<String>,
    line: usize,
}

/// The module paths a file refers to. `module` is the file's own module path (`["model",
/// "hub"]` for src/model/hub.rs, `[]` for src/lib.rs).
fn references(src: &str, module: &[String]) -> Vec<Reference> {
    let toks = lex(src);
    // Children declared in this file (`mod x;`): a path may start with their name.
    let mut children = BTreeSet::new();
    for w in toks.windows(3) {
        if let [(Tok::Ident(m), _), (Tok::Ident(name), _), (Tok::Punct(';'), _)] = w {
            if m == "mod" {
                children.insert(name.clone());
            }
        }
    }
    // Absolute path of `segments` as written in the inline module `scope`.
    let absolute = |scope: &[String], segments: &[String]| -> Option<Vec<String>> {
        let first = segments.first()?;
        let (mut abs, rest) = match first.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (scope.to_vec(), &segments[1..]),
            "super" => {
                let mut abs = scope.to_vec();
                let mut k = 0;
                while segments.get(k).is_some_and(|s| s == "super") {
                    abs.pop()?;
                    k += 1;
                }
                (abs, &segments[k..])
            }
            name if children.contains(name) => (module.to_vec(), segments),
            // Another crate, the prelude, or a name this file imported (whose `use` counted).
            _ => return None,
        };
        abs.extend(rest.iter().filter(|s| *s != "self").cloned());
        Some(abs)
    };
    let mut out = Vec::new();
    // Inline modules (`mod tests { .. }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let scope_of = |inline: &[(String, usize)]| -> Vec<String> {
        let mut s = module.to_vec();
        s.extend(inline.iter().map(|(n, _)| n.clone()));
        s
    };
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Ident(kw) if kw == "use" => {
                let mut paths = Vec::new();
                i += 1;
                use_tree(&toks, &mut i, &[], &mut paths);
                let scope = scope_of(&inline);
                for p in paths {
                    if let Some(path) = absolute(&scope, &p) {
                        out.push(Reference { path, line: *line });
                    }
                }
                continue;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(name), Some((Tok::Punct('{'), _))) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    inline.push((name.to_string(), depth + 1));
                }
            }
            Tok::Ident(first)
                if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Sep)
                    && (i == 0 || toks[i - 1].0 != Tok::Sep) =>
            {
                // An inline path: its identifiers up to a generic argument list, a group or the
                // end.
                let mut segments = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Sep) {
                    match ident(toks.get(j + 1)) {
                        Some(s) => segments.push(s.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                if let Some(path) = absolute(&scope_of(&inline), &segments) {
                    out.push(Reference { path, line: *line });
                }
                i = j;
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The file (relative to `src`) that holds the module path, or the deepest module above it
/// that has one: an item's path resolves to the file that defines or re-exports it.
fn file_of(src: &Path, path: &[String]) -> String {
    for k in (1..=path.len()).rev() {
        let stem = path[..k].join("/");
        for candidate in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if src.join(&candidate).is_file() {
                return candidate;
            }
        }
    }
    "lib.rs".to_string()
}

/// The module path of a file relative to `src` (`model/mod.rs` and `model.rs` are `model`).
fn module_of(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap();
    let mut parts: Vec<String> = stem.split('/').map(String::from).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// file -> (used file -> first line using it).
type Graph = BTreeMap<String, BTreeMap<String, usize>>;

fn uses_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let text = read(&src.join(&file));
        let edges = graph.entry(file.clone()).or_default();
        for r in references(&text, &module_of(&file)) {
            let target = file_of(src, &r.path);
            if target != file {
                edges.entry(target).or_insert(r.line);
            }
        }
    }
    graph
}

/// Each set of files that use one another in a circle, with one shortest cycle through its
/// first file (in order of use, the first repeated at the end).
fn cycles(graph: &Graph) -> Vec<(BTreeSet<String>, Vec<String>)> {
    // Which files reach which: small graphs, so a search from each file is cheap.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(f) = todo.pop() {
            for next in graph.get(&f).into_iter().flat_map(|e| e.keys()) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for start in graph.keys() {
        if done.contains(start) || !reach(start).contains(start) {
            continue;
        }
        // Its circle's members: the files it reaches that reach it back.
        let members: BTreeSet<String> = reach(start)
            .into_iter()
            .filter(|f| reach(f).contains(start))
            .collect();
        done.extend(members.iter().cloned());
        // Shortest way back to `start`, breadth first within the circle.
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        let mut shortest = None;
        'search: while let Some(f) = queue.pop_front() {
            for next in graph[&f].keys() {
                if next == start {
                    let mut cycle = vec![start.clone(), f.clone()];
                    let mut at = &f;
                    while let Some(p) = parent.get(at) {
                        cycle.push(p.clone());
                        at = p;
                    }
                    // Built backwards from the use that closes it: start <- f <- .. <- start.
                    cycle.reverse();
                    shortest = Some(cycle);
                    break 'search;
                }
                if members.contains(next) && !parent.contains_key(next) {
                    parent.insert(next.clone(), f.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let cycle = shortest.expect("a file that reaches itself has a way back");
        out.push((members, cycle));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// (a) The engine's files use one another without a circle
// ---------------------------------------------------------------------------------------------

/// Every crate's sources: the engine's and each other crate's `src/`.
const CRATE_SOURCES: [&str; 6] = [
    "src",
    "indexer/src",
    "query/src",
    "train/src",
    "milvus/src",
    "cli/src",
];

#[test]
fn engine_files_use_one_another_without_a_circle() {
    assert_no_circle("src");
}

#[test]
fn no_crate_has_a_circle_between_its_files() {
    let failed: Vec<String> = CRATE_SOURCES
        .iter()
        .filter_map(|dir| {
            std::panic::catch_unwind(|| assert_no_circle(dir))
                .err()
                .map(|e| match e.downcast::<String>() {
                    Ok(m) => *m,
                    Err(_) => format!("{dir}: a circle"),
                })
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

fn assert_no_circle(dir: &str) {
    let src = root().join(dir);
    let graph = uses_graph(&src);
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|(members, cycle)| {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("  {} uses {} (line {})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            let all: Vec<&str> = members.iter().map(String::as_str).collect();
            format!(
                "{}\n{}\n  (the files in this circle: {})",
                cycle.join(" -> "),
                steps.join("\n"),
                all.join(", ")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles between files of {dir}/ (each line: a file that names the next one's \
         module path; break the circle by moving what they share into a module of its own):\n{}",
        described.join("\n")
    );
}

/// The engine's top-level module a file belongs to: `index/` for src/index/search.rs,
/// `device.rs` for src/device.rs.
fn top_module(file: &str) -> String {
    match file.split_once('/') {
        Some((dir, _)) => format!("{dir}/"),
        None => file.to_string(),
    }
}

#[test]
fn engine_modules_use_one_another_without_a_circle() {
    // Files can be free of circles while their directories are not (store/collection.rs using
    // index/, index/publish.rs using store/mod.rs): the modules are what the crate's docs and
    // readers treat as units, so they get the same rule, one level up.
    let src = root().join("src");
    let mut modules = Graph::new();
    // For each module-level use, one file-level use that makes it, for the message.
    let mut example: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, uses) in uses_graph(&src) {
        let from = top_module(&file);
        let edges = modules.entry(from.clone()).or_default();
        for (used, line) in uses {
            let to = top_module(&used);
            if to != from {
                edges.entry(to.clone()).or_insert(line);
                example
                    .entry((from.clone(), to))
                    .or_insert(format!("{file} uses {used} (line {line})"));
            }
        }
    }
    let found = cycles(&modules);
    let described: Vec<String> = found
        .iter()
        .map(|(_, cycle)| {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("  {}", example[&(w[0].clone(), w[1].clone())]))
                .collect();
            format!("{}\n{}", cycle.join(" -> "), steps.join("\n"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles between the engine's top-level modules:\n{}",
        described.join("\n")
    );
}

#[test]
fn the_uses_reader_finds_the_paths_rust_resolves_and_nothing_else() {
    // The circle checks are only as good as this reader: it must see every way a file names
    // another, and not mistake prose or strings for a use.
    let src = r##"
        //! Doc: `crate::prose::only` is not a use.
        mod child;
        use super::{sibling::{self, Item}, other as renamed};
        use crate::{a, b::{c, d::*}};
        pub use child::Thing;
        /* crate::block::comment */
        fn f() {
            let _ = "crate::in_a_string \" crate::still_in_it";
            let _ = r#"crate::in_a_raw_string"#;
            let _ = b"crate::in_bytes";
            let _ = ['c', '\'', '"'];
            let _: &'static str = "";
            crate::inline::call::<u8>();
            child::nested::f();
            self::local::g();
            std::mem::drop(());
        }
        #[cfg(test)]
        mod tests {
            use super::*;
            use super::super::uncle;
        }
    "##;
    let module = ["model".to_string(), "hub".to_string()];
    let found: BTreeSet<String> = references(src, &module)
        .into_iter()
        .map(|r| r.path.join("::"))
        .collect();
    let want: BTreeSet<String> = [
        "model::sibling",
        "model::sibling::Item",
        "model::other",
        "a",
        "b::c",
        "b::d",
        "model::hub::child::Thing",
        "inline::call",
        "model::hub::child::nested::f",
        "model::hub::local::g",
        // Inside `mod tests`: `super` is the file itself, `super::super` its parent.
        "model::hub",
        "model::uncle",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, want);
}

#[test]
fn a_circle_is_reported_in_the_order_its_files_use_one_another() {
    let mut graph = Graph::new();
    for (from, to) in [
        ("a.rs", "b.rs"),
        ("b.rs", "c.rs"),
        ("c.rs", "a.rs"),
        ("c.rs", "d.rs"),
    ] {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string(), 1);
    }
    graph.entry("d.rs".to_string()).or_default();
    let found = cycles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, ["a.rs", "b.rs", "c.rs", "a.rs"]);
    let members: Vec<&str> = found[0].0.iter().map(String::as_str).collect();
    assert_eq!(members, ["a.rs", "b.rs", "c.rs"]);
    // Without the closing use there is no circle at all.
    graph.get_mut("c.rs").unwrap().remove("a.rs");
    assert!(cycles(&graph).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The workspace as its Cargo.tomls say, parsed by hand: the few keys read here do not need a
// TOML parser (and the `toml` crate is not in Cargo.lock)
// ---------------------------------------------------------------------------------------------

/// A line without its comment (a `#` outside a string).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Every double-quoted string in `text`.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

struct Crate {
    /// Its package name.
    name: String,
    /// Its directory relative to the workspace root (`.` for the engine).
    dir: String,
    /// What it is built from (`[dependencies]`, `[build-dependencies]`, per target too), by
    /// package name.
    dependencies: BTreeSet<String>,
    /// What its tests, examples and benchmarks add (`[dev-dependencies]`).
    dev_dependencies: BTreeSet<String>,
}

/// The table headers and the `key = value` lines of a Cargo.toml, in order.
fn toml_lines(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut pending: Option<(String, String)> = None;
    for raw in text.lines() {
        let line = strip_comment(raw).trim();
        if let Some((key, mut value)) = pending.take() {
            // A multi-line array, e.g. `members = [ .. ]`.
            value.push(' ');
            value.push_str(line);
            if line.contains(']') {
                out.push((table.clone(), key, value));
            } else {
                pending = Some((key, value));
            }
            continue;
        }
        if line.starts_with('[') {
            table = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            let (key, value) = (key.trim().to_string(), value.trim().to_string());
            if value.starts_with('[') && !value.contains(']') {
                pending = Some((key, value));
            } else {
                out.push((table.clone(), key, value));
            }
        }
    }
    out
}

fn package_name(lines: &[(String, String, String)], path: &Path) -> String {
    lines
        .iter()
        .find(|(t, k, _)| t == "package" && k == "name")
        .and_then(|(_, _, v)| quoted(v).into_iter().next())
        .unwrap_or_else(|| panic!("{}: no [package] name", path.display()))
}

/// The dependencies a Cargo.toml declares in tables of the given kinds (`dependencies`,
/// `dev-dependencies`, `build-dependencies`, and their `[target.'..'.*]` forms), by package
/// name: `name = ..`, `name.workspace = true`, `[dependencies.name]`, renamed ones by their
/// `package`.
fn dependencies(lines: &[(String, String, String)], kinds: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (table, key, value) in lines {
        // `[workspace.dependencies]` declares versions for members; it is no one's dependency.
        if table.starts_with("workspace") {
            continue;
        }
        let parts: Vec<&str> = table.split('.').collect();
        let kind_at = parts.iter().position(|p| kinds.contains(p));
        let Some(at) = kind_at else { continue };
        let renamed = |v: &str| -> Option<String> {
            let (_, rest) = v.split_once("package")?;
            quoted(rest.trim_start().strip_prefix('=')?)
                .into_iter()
                .next()
        };
        if at + 1 < parts.len() {
            // `[dependencies.name]`: this line is one of its keys.
            let name = parts[at + 1].trim_matches('"').to_string();
            if key == "package" {
                out.extend(quoted(value));
            } else {
                out.insert(name);
            }
        } else {
            let name = key.split('.').next().unwrap().trim_matches('"').to_string();
            out.insert(renamed(value).unwrap_or(name));
        }
    }
    out
}

/// The workspace's crates: the root's `[workspace] members`, each its package.
fn workspace() -> Vec<Crate> {
    let root_toml = root().join("Cargo.toml");
    let lines = toml_lines(&read(&root_toml));
    let members = lines
        .iter()
        .find(|(t, k, _)| t == "workspace" && k == "members")
        .map(|(_, _, v)| quoted(v))
        .expect("Cargo.toml: no [workspace] members");
    let mut crates: Vec<Crate> = members
        .iter()
        .map(|dir| {
            let path = root().join(dir).join("Cargo.toml");
            let lines = toml_lines(&read(&path));
            Crate {
                name: package_name(&lines, &path),
                dir: dir.clone(),
                dependencies: dependencies(&lines, &["dependencies", "build-dependencies"]),
                dev_dependencies: dependencies(&lines, &["dev-dependencies"]),
            }
        })
        .collect();
    let names: BTreeSet<String> = crates.iter().map(|c| c.name.clone()).collect();
    for c in &mut crates {
        let own = c.name.clone();
        c.dependencies.retain(|d| names.contains(d) && *d != own);
        c.dev_dependencies
            .retain(|d| names.contains(d) && *d != own);
    }
    crates
}

/// An arrow between two crates, `A -> B` when A depends on B, written `A -> B (dev)` when only
/// A's tests, examples or benchmarks do.
type Arrow = (String, String, bool);

/// The arrows between the workspace's crates.
fn crate_arrows(crates: &[Crate]) -> BTreeSet<Arrow> {
    let mut out = BTreeSet::new();
    for c in crates {
        for d in &c.dependencies {
            out.insert((c.name.clone(), d.clone(), false));
        }
        for d in c.dev_dependencies.difference(&c.dependencies) {
            out.insert((c.name.clone(), d.clone(), true));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ARCHITECTURE.md, as far as these checks read it
// ---------------------------------------------------------------------------------------------

fn architecture() -> String {
    read(&root().join("ARCHITECTURE.md"))
}

/// The info string of the fenced block that lists the crates and their arrows.
const CRATES_FENCE: &str = "```text crates";

/// The crate list of ARCHITECTURE.md: the lines of its "```text crates" block, each `A -> B`,
/// `A -> B (dev)` (an arrow) or `A` (a crate).
fn doc_crates(doc: &str) -> (BTreeSet<String>, BTreeSet<Arrow>) {
    let mut lines = doc.lines().skip_while(|l| l.trim() != CRATES_FENCE);
    assert!(
        lines.next().is_some(),
        "ARCHITECTURE.md has no {CRATES_FENCE} block: the list of crates and arrows this test \
         checks against the Cargo.tomls"
    );
    let (mut names, mut arrows) = (BTreeSet::new(), BTreeSet::new());
    for line in lines.take_while(|l| !l.trim_start().starts_with("```")) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once("->") {
            Some((a, b)) => {
                let (b, dev) = match b.trim().strip_suffix("(dev)") {
                    Some(b) => (b, true),
                    None => (b, false),
                };
                let (a, b) = (a.trim().to_string(), b.trim().to_string());
                names.insert(a.clone());
                names.insert(b.clone());
                arrows.insert((a, b, dev));
            }
            None => {
                names.insert(line.to_string());
            }
        }
    }
    (names, arrows)
}

/// The doc's sections: each `## ` heading with the text under it, up to the next one.
fn sections(doc: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            out.push((heading.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Every `code span` in `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// What a section's tables name in their first column (header rows left out), each with the
/// row's line for messages.
fn table_names(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in body.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let first = line.trim_matches('|').split('|').next().unwrap_or("");
        // A table's first row is its header, its second the `|---|` separator.
        if !in_table || first.trim().chars().all(|c| c == '-' || c == ':') {
            in_table = true;
            continue;
        }
        for name in code_spans(first) {
            out.push((name, line.chars().take(80).collect()));
        }
    }
    out
}

fn number_word(n: usize) -> &'static str {
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    words.get(n).copied().unwrap_or("many")
}

// ---------------------------------------------------------------------------------------------
// (b) ARCHITECTURE.md's crate picture is the workspace's
// ---------------------------------------------------------------------------------------------

#[test]
fn the_crate_picture_lists_every_crate_and_every_arrow_between_them() {
    let crates = workspace();
    let doc = architecture();
    let names: BTreeSet<String> = crates.iter().map(|c| c.name.clone()).collect();
    let arrows = crate_arrows(&crates);
    let (doc_names, doc_arrows) = doc_crates(&doc);
    let show = |arrows: &BTreeSet<Arrow>| -> String {
        let line =
            |(a, b, dev): &Arrow| format!("\n  {a} -> {b}{}", if *dev { " (dev)" } else { "" });
        arrows.iter().map(line).collect()
    };
    let missing: BTreeSet<_> = arrows.difference(&doc_arrows).cloned().collect();
    let stale: BTreeSet<_> = doc_arrows.difference(&arrows).cloned().collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "ARCHITECTURE.md's {CRATES_FENCE} block is not the Cargo.tomls' dependencies between \
         workspace crates.\nDepended on, not listed:{}\nListed, not depended on:{}",
        show(&missing),
        show(&stale)
    );
    assert_eq!(
        doc_names, names,
        "the crates ARCHITECTURE.md's {CRATES_FENCE} block names, against the workspace's members"
    );
    // The picture's prose counts them too, and is the first thing a reader believes.
    let count = format!("workspace of {} crates", number_word(crates.len()));
    assert!(
        doc.contains(&count),
        "ARCHITECTURE.md should say it is a \"{count}\""
    );
}

// ---------------------------------------------------------------------------------------------
// (c) ARCHITECTURE.md's tables name every source file, and only files that exist
// ---------------------------------------------------------------------------------------------

#[test]
fn every_source_file_has_a_row_and_every_row_a_file() {
    let doc = architecture();
    let sections = sections(&doc);
    let mut problems = Vec::new();
    for krate in workspace() {
        let src_dir = if krate.dir == "." {
            "src/".to_string()
        } else {
            format!("{}/src/", krate.dir.trim_end_matches('/'))
        };
        // The section for a crate's sources names their directory in its heading: a heading
        // naming a subdirectory (`query/src/serve/`) is prose about part of it, not its table.
        let wanted = format!("`{src_dir}`");
        let Some((_, body)) = sections.iter().find(|(h, _)| h.contains(&wanted)) else {
            problems.push(format!(
                "{}: no section whose heading names {wanted}",
                krate.name
            ));
            continue;
        };
        let on_disk = rust_files(&root().join(&src_dir));
        let mut named = BTreeSet::new();
        for (name, row) in table_names(body) {
            if !on_disk.contains(&name) {
                problems.push(format!(
                    "{src_dir}: the row \"{row}\" names `{name}`, which is not a .rs file there"
                ));
            }
            named.insert(name);
        }
        for file in on_disk.difference(&named) {
            problems.push(format!("{src_dir}{file}: no row in ARCHITECTURE.md"));
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md's file tables and the sources disagree:\n{}",
        problems.join("\n")
    );
}
