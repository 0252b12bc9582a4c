//! Assertion density of the engine's stateful core (issue 18): `replica/`, `log/` and
//! `coordinator/` keep at least one assertion per function on average, counted over non-test
//! code. The replica, log and coordinators are where a wrong offset, epoch or state silently
//! corrupts what the checkers see; an assertion turns that into a `panic` violation of the
//! seed, at the write that broke the invariant (TigerBeetle's rule: assert what must hold,
//! where state is written and where it is read).
//!
//! `cargo test --release -p kafsim-engine --test all assert_density -- --nocapture` prints the
//! table.

use std::path::{Path, PathBuf};

/// The directories held to the floor, and the floor (assertions per function).
const DIRS: [&str; 3] = ["replica", "log", "coordinator"];
const FLOOR: f64 = 1.0;

/// Counts of one directory's non-test code.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Density {
    functions: usize,
    assertions: usize,
}

impl Density {
    fn per_function(self) -> f64 {
        if self.functions == 0 {
            return 0.0;
        }
        self.assertions as f64 / self.functions as f64
    }
}

/// The non-test lines of one source file: `#[cfg(test)]` items (a `mod tests { .. }` block or
/// a `mod name;` declaration) and line comments are removed. Returns the lines kept and the
/// files of modules declared under `#[cfg(test)]` (`name.rs`, or the file a `#[path]`
/// attribute names, with `true`): they are test code too.
fn non_test_lines(source: &str) -> (Vec<String>, Vec<(String, bool)>) {
    let mut kept = Vec::new();
    let mut test_modules = Vec::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let code = strip_comment(line);
        if code.trim() != "#[cfg(test)]" {
            kept.push(code);
            continue;
        }
        // Skip further attributes, then the item: up to its `;` or its balanced braces.
        let mut depth: i64 = 0;
        let mut opened = false;
        let mut path_file: Option<String> = None;
        for item_line in lines.by_ref() {
            let code = strip_comment(item_line);
            let trimmed = code.trim();
            if !opened && trimmed.starts_with("#[") {
                // `#[path = "file.rs"]`: the module's file is test code.
                if let Some(path) = trimmed.strip_prefix("#[path = \"") {
                    path_file = path.split('"').next().map(str::to_string);
                }
                continue;
            }
            if !opened && trimmed.ends_with(';') && !trimmed.contains('{') {
                if let Some(name) = trimmed
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ")
                    .strip_prefix("mod ")
                {
                    let name = name.trim_end_matches(';').trim();
                    test_modules.push(match path_file.take() {
                        Some(file) => (file, true),
                        None => (format!("{name}.rs"), false),
                    });
                }
                break;
            }
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                break;
            }
        }
    }
    (kept, test_modules)
}

fn strip_comment(line: &str) -> String {
    match line.find("//") {
        Some(at) => line[..at].to_string(),
        None => line.to_string(),
    }
}

/// Counts `fn` items and assertion macros in code lines.
fn count(lines: &[String]) -> Density {
    let mut density = Density::default();
    for line in lines {
        density.functions += occurrences_of_fn(line);
        for mac in [
            "assert!(",
            "assert_eq!(",
            "assert_ne!(",
            "debug_assert!(",
            "debug_assert_eq!(",
            "debug_assert_ne!(",
        ] {
            // `debug_assert!(` contains `assert!(` only after `debug_`: count whole words.
            density.assertions += line
                .match_indices(mac)
                .filter(|(at, _)| {
                    let before = line[..*at].chars().last();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
                .count();
        }
    }
    density
}

/// `fn name` items (not the `Fn(..)` / `fn(..)` types).
fn occurrences_of_fn(line: &str) -> usize {
    line.match_indices("fn ")
        .filter(|(at, _)| {
            let before = line[..*at].chars().last();
            let after = line[at + 3..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && after.is_some_and(|c| c.is_alphabetic() || c == '_')
        })
        .count()
}

/// The `.rs` files under `dir`, in every subdirectory (a module split into child modules
/// keeps them in a directory named after it), sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Where the module `name` declared in `file` lives: beside a `mod.rs` (or at a `#[path]`,
/// which is relative to the declaring file's directory), else in the directory named after
/// the declaring file (`transaction.rs` declares `transaction/markers.rs`).
fn module_file(file: &Path, name: &str, from_path_attribute: bool) -> PathBuf {
    let dir = file.parent().expect("a file's directory");
    let stem = file.file_stem().expect("a file name");
    if from_path_attribute || stem == "mod" || stem == "lib" {
        dir.join(name)
    } else {
        dir.join(stem).join(name)
    }
}

fn density_of(dir: &Path) -> Density {
    let files = rust_files(dir);
    let mut test_files = Vec::new();
    let mut parsed = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("source file");
        let (lines, test_modules) = non_test_lines(&source);
        test_files.extend(
            test_modules
                .into_iter()
                .map(|(m, from_path)| module_file(file, &m, from_path)),
        );
        parsed.push((file.clone(), lines));
    }
    let mut total = Density::default();
    for (file, lines) in parsed {
        if test_files.contains(&file) {
            continue;
        }
        let d = count(&lines);
        total.functions += d.functions;
        total.assertions += d.assertions;
    }
    total
}

#[test]
fn replica_log_and_coordinator_assert_at_least_once_per_function() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut below = Vec::new();
    println!(
        "{:<12} {:>10} {:>10} {:>8}",
        "directory", "functions", "asserts", "per fn"
    );
    for dir in DIRS {
        let d = density_of(&src.join(dir));
        println!(
            "{:<12} {:>10} {:>10} {:>8.2}",
            dir,
            d.functions,
            d.assertions,
            d.per_function()
        );
        assert!(
            d.functions > 0,
            "{dir}: no functions found; is the path right?"
        );
        if d.per_function() < FLOOR {
            below.push(format!("{dir}: {:.2}", d.per_function()));
        }
    }
    assert!(
        below.is_empty(),
        "assertion density below {FLOOR} per function: {below:?}; assert what must hold \
         where state is written and read"
    );
}

#[test]
fn the_counter_skips_test_code_and_comments_and_counts_whole_macros() {
    let source = "\
fn a() { assert!(x); debug_assert_eq!(a, b); }
// fn commented() { assert!(y); }
fn b(f: impl Fn(u8), g: fn(u8)) {}
#[cfg(test)]
mod helpers;
#[cfg(test)]
#[path = \"other_tests.rs\"]
mod more;
#[cfg(test)]
#[allow(dead_code)]
mod tests {
    fn t() { assert!(z); }
    mod inner { fn u() {} }
}
fn c() { my_assert!(q); }
";
    let (lines, test_modules) = non_test_lines(source);
    assert_eq!(
        test_modules,
        [
            ("helpers.rs".to_string(), false),
            ("other_tests.rs".to_string(), true)
        ]
    );
    assert_eq!(
        count(&lines),
        Density {
            functions: 3,
            assertions: 2
        }
    );
}
