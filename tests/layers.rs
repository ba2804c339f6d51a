//! The architecture holds: every module of `src/` imports only the layers below it, so
//! there is no import cycle, and the lowest layers (`transport`, `frame`, `message`,
//! `auth`, `codec`) never reach the typed API (`channel`) or anything above it.
//!
//! The order is the one `src/lib.rs` declares its modules in and README's "Architecture"
//! section draws; a reference `crate::x` in code (comments and doc comments aside) counts
//! as an import of `x`, and `crate::Name` of a root re-export as an import of the module
//! it comes from.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import only modules before it.
const LAYERS: &[&str] = &[
    "error",
    "address",
    // The `tracing` events: over the error and address they report, under everything that
    // reports.
    "trace",
    "frame",
    "transport",
    // TLS sessions (feature `tls`): what the message layer reads and writes through, over
    // the transports' sockets.
    "tls",
    "message",
    "auth",
    "codec",
    "shm",
    "wait",
    "channel",
    "listener",
    "client",
    "process",
    "rpc",
    // The async drivers (features `tokio`, `async-io`): over the blocking setup and
    // message layers, under nothing.
    "aio",
    "tokio",
    "async_io",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(m) => Some(m.to_owned()),
        None => Some(first),
    }
}

/// The code of a file, without comments (line comments and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names `lib.rs` re-exports at the root, and the module each comes from.
fn root_names() -> BTreeMap<String, String> {
    let lib = code(&fs::read_to_string(src().join("lib.rs")).expect("lib.rs"));
    let mut names = BTreeMap::new();
    for stmt in lib.split("pub use crate::").skip(1) {
        let stmt = &stmt[..stmt.find(';').expect("use ends with ;")];
        parse_use(stmt, None, &mut names);
    }
    names
}

/// Collects `module::{a, b}` / `module::a` / `{m1::{..}, m2::x}` into name -> module.
fn parse_use(stmt: &str, module: Option<&str>, out: &mut BTreeMap<String, String>) {
    let stmt = stmt.trim();
    if let Some(inner) = stmt.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        for part in split_top(inner) {
            parse_use(part, module, out);
        }
        return;
    }
    match stmt.split_once("::") {
        Some((head, rest)) => parse_use(rest, Some(module.unwrap_or(head)), out),
        None if !stmt.is_empty() => {
            out.insert(stmt.to_owned(), module.expect("a module").to_owned());
        }
        None => {}
    }
}

/// Splits at commas outside braces.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The modules `text` imports, with the first line that does.
fn imports(text: &str, roots: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for line in code(text).lines() {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let module = roots.get(&name).cloned().unwrap_or(name);
            found
                .entry(module)
                .or_insert_with(|| line.trim().to_owned());
        }
        // `use crate::{a::x, b::y}` at the start of a use tree
        if let Some(tree) = line.trim().strip_prefix("use crate::{") {
            for part in split_top(tree.trim_end_matches("};")) {
                let head = part.trim().split("::").next().unwrap_or("").to_owned();
                let module = roots.get(&head).cloned().unwrap_or(head);
                found
                    .entry(module)
                    .or_insert_with(|| line.trim().to_owned());
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let roots = root_names();
    assert!(roots.contains_key("Sender"), "lib.rs re-exports: {roots:?}");
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    let mut seen_modules = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        let Some(rank) = LAYERS.iter().position(|l| *l == module) else {
            panic!(
                "{} belongs to {module}, which is not in LAYERS",
                file.display()
            );
        };
        seen_modules.push(module.clone());
        let text = fs::read_to_string(file).expect("read");
        for (imported, line) in imports(&text, &roots) {
            let Some(theirs) = LAYERS.iter().position(|l| *l == imported) else {
                continue; // a macro's `$crate`, or a name this test does not map
            };
            if theirs >= rank && imported != module {
                violations.push(format!(
                    "{} ({module}) imports {imported}: {line}",
                    file.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    for layer in LAYERS {
        assert!(
            seen_modules.iter().any(|m| m == layer),
            "LAYERS names {layer}, which has no file in src/"
        );
    }
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_lowest_layers_never_name_the_typed_api() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let typed = ["Sender<", "Receiver<", "Connection<", "crate::channel"];
    for file in files {
        let module = module_of(&file).unwrap_or_default();
        if !["transport", "frame", "message", "auth", "codec"].contains(&module.as_str()) {
            continue;
        }
        let text = code(&fs::read_to_string(&file).expect("read"));
        for name in typed {
            let hit = text
                .lines()
                .find(|l| l.contains(name) && !l.contains(&format!("Message{name}")));
            assert!(
                hit.is_none(),
                "{} names the typed API ({name}): {}",
                file.display(),
                hit.unwrap_or_default().trim()
            );
        }
    }
}

/// The crate root holds the core and no more: at most 35 items, public modules counted,
/// besides the modules that only their features turn on: the three async ones (`aio` and
/// the two runtime modules, which name its types) and `tls`.
#[test]
fn the_root_exports_at_most_35_items() {
    let lib = code(&fs::read_to_string(src().join("lib.rs")).expect("lib.rs"));
    let names = root_names();
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    let optional = ["aio", "tokio", "async_io", "tls"];
    let count = names.len() + modules.iter().filter(|m| !optional.contains(m)).count();
    println!(
        "root: {} items and modules {modules:?} = {count}",
        names.len()
    );
    assert!(
        count <= 35,
        "the root exports {count} items: {names:?} {modules:?}"
    );
    for m in ["auth", "codec", "frame", "rpc"] {
        assert!(modules.contains(&m), "no public module {m}");
    }
}
