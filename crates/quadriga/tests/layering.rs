//! The library's layering (DESIGN.md, "Layering"), checked on its source: a
//! room uses only rooms below it, the modules form no cycle, and the modules
//! that stand side by side (`ipc` and `sync`; the backends `thread`,
//! `process` and `aio`) never use each other.
//!
//! An edge is a `crate::module` (or `$crate::module`) path in non-test code:
//! comments, `#[cfg(test)]` items and sibling `tests.rs` files are skipped,
//! since tests may reach anywhere. A top-level module that is not in
//! [`ROOMS`] fails the test, so a new module must be given its room.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its room, from the ground up.
const ROOMS: &[(&str, u8)] = &[
    // 1: plain data and shims (`fault_point!`/`fault_errno!` are `fault`'s).
    ("error", 1),
    ("context", 1),
    ("loom", 1),
    ("panic", 1),
    ("fault", 1),
    ("fault_point", 1),
    ("fault_errno", 1),
    // 2: the backend-neutral task core.
    ("task", 2),
    ("handle", 2),
    ("executor", 2),
    ("map", 2),
    ("wait", 2),
    // 3: foundations.
    ("shm", 3),
    ("child", 3),
    // 4: cross-process objects, and the concurrency controller.
    ("ipc", 4),
    ("sync", 4),
    ("adapt", 4),
    // 5: the backends.
    ("thread", 5),
    ("process", 5),
    ("aio", 5),
    // 6: above the backends; `init` calls down into the worker bootstrap.
    ("cluster", 6),
    ("data", 6),
    ("init", 6),
];

/// Modules of one room that must not use each other.
const SIDE_BY_SIDE: &[&[&str]] = &[&["ipc", "sync"], &["thread", "process", "aio"]];

/// Known edges against the rule, each with its reason; keep this short.
/// Known edges against the rule, each with its reason; keep this empty if you
/// can (the thread pool's call into `init` was the last one).
const KNOWN: &[(&str, &str, &str)] = &[];

fn room(module: &str) -> Option<u8> {
    ROOMS.iter().find(|(m, _)| *m == module).map(|&(_, r)| r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether a `#[cfg(...)]` line holds only for tests: `test`, or `all(...)`
/// with `test` in it (not `any(test, ...)`, which also builds without tests).
fn test_only_cfg(line: &str) -> bool {
    let Some(expr) = line
        .trim()
        .strip_prefix("#[cfg(")
        .and_then(|rest| rest.strip_suffix(")]"))
    else {
        return false;
    };
    let words = |s: &str| {
        s.split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|w| w == "test")
    };
    expr == "test" || (expr.starts_with("all(") && words(expr) && !expr.contains("not(test"))
}

/// The code of `text` without comments and without test-only items.
fn non_test_code(text: &str) -> Vec<&str> {
    let mut code = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if !test_only_cfg(line) {
            code.push(line);
            continue;
        }
        // Skip the item the attribute is on: to its `;`, or to the brace
        // that closes its first `{`.
        let mut depth = 0_i32;
        let mut opened = false;
        for item in lines.by_ref() {
            if item.trim_start().starts_with("//") {
                continue;
            }
            for c in item.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (opened && depth == 0) || (!opened && item.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    code
}

/// The top-level modules a line of code names through `crate::`.
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        let after = &rest[at + "crate::".len()..];
        rest = after;
        // `extern crate self as quadriga;` and paths such as `foo_crate::`.
        if before
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

/// The modules behind the names `lib.rs` re-exports (`crate::TaskError` is
/// `error`'s): from its `pub use module::{a, b}` and `pub use module::a`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let code = non_test_code(lib)
        .into_iter()
        .filter(|l| !l.trim_start().starts_with("#["))
        .collect::<Vec<_>>()
        .join(" ");
    let mut names = BTreeMap::new();
    for statement in code.split(';') {
        let Some(path) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let item = item.trim();
            let name = match item.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => item.rsplit("::").next().unwrap_or(item),
            };
            if !name.is_empty() {
                names.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    names
}

/// Every edge `module -> module` of the library's non-test code, with a file
/// and line that shows it.
fn edges() -> BTreeMap<(String, String), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let roots = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
        if rel == Path::new("lib.rs") || matches!(stem(rel).as_str(), "tests" | "test") {
            continue;
        }
        let first = rel.components().next().unwrap().as_os_str();
        let module = stem(Path::new(first));
        let text = std::fs::read_to_string(&file).unwrap();
        for line in non_test_code(&text) {
            for name in named_modules(line) {
                let target = match roots.get(&name) {
                    Some(owner) if room(&name).is_none() => owner.clone(),
                    _ => name,
                };
                if target != module {
                    edges
                        .entry((module.clone(), target))
                        .or_insert_with(|| format!("{}: {}", rel.display(), line.trim()));
                }
            }
        }
    }
    edges
}

#[test]
fn a_room_uses_only_rooms_below_it() {
    let mut wrong = Vec::new();
    for ((from, to), at) in edges() {
        let (Some(a), Some(b)) = (room(&from), room(&to)) else {
            wrong.push(format!(
                "{from} -> {to}: give each top-level module a room in ROOMS ({at})"
            ));
            continue;
        };
        let known = KNOWN.iter().any(|&(f, t, _)| f == from && t == to);
        if a < b && !known {
            wrong.push(format!("{from} (room {a}) -> {to} (room {b}): {at}"));
        }
        if SIDE_BY_SIDE
            .iter()
            .any(|group| group.contains(&from.as_str()) && group.contains(&to.as_str()))
        {
            wrong.push(format!("{from} and {to} stand side by side: {at}"));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_modules_form_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges().into_keys() {
        graph.entry(from).or_default().insert(to);
    }
    // Depth-first search; a node met again while on the stack closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("a module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_through_reexports() {
    let lib = "pub use error::{BuildError, TaskError};\n\
               #[doc(hidden)]\n\
               pub use task::__private;\n\
               pub use quadriga_macros::task;\n\
               pub use thread::{\n    Scope,\n    ThreadPool as Pool,\n};\n";
    let names = reexports(lib);
    assert_eq!(names["TaskError"], "error");
    assert_eq!(names["__private"], "task");
    assert_eq!(names["Pool"], "thread");
    assert_eq!(names["Scope"], "thread");
}

/// The checker itself: test-only code is skipped, the rest is seen.
#[test]
fn the_checker_skips_tests_and_comments_only() {
    let text = "use crate::a::X;\n\
                // use crate::b;\n\
                #[cfg(any(test, feature = \"fuzzing\"))]\n\
                pub use crate::c::f;\n\
                #[cfg(test)]\n\
                fn helper() {\n    crate::d::g();\n}\n\
                #[cfg(all(test, not(quadriga_loom)))]\n\
                mod tests {\n    use crate::e::Y;\n    fn f() { crate::e::z() }\n}\n\
                #[cfg(test)]\n\
                use crate::f::Z;\n\
                $crate::g::h!();\n\
                extern crate self as quadriga;\n";
    let seen: Vec<String> = non_test_code(text)
        .into_iter()
        .flat_map(named_modules)
        .collect();
    assert_eq!(seen, ["a", "c", "g"]);
}
