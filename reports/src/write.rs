//! Writing a report directory atomically: all of it or nothing.
//!
//! The files are written into a temporary sibling of DIR (same parent, so the same file
//! system) and renamed into place, so a run interrupted half-way leaves no half report. DIR
//! may be missing, empty, or a previous report (it holds the marker file
//! [`REPORT_MARKER`]), which is replaced; any other non-empty directory is refused, so a
//! mistyped `--report ~/src` cannot delete someone's files.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::html::render_html;
use crate::json::render_results_json;
use crate::markdown::render_markdown;
use crate::omb::{render_omb, OmbShape};
use crate::result::{BenchResult, Sweep};

/// The file that marks a directory as a kafsim report (and so replaceable by the next one).
pub const REPORT_MARKER: &str = ".kafsim-report";

/// Why a report could not be written.
#[derive(Debug)]
pub enum ReportError {
    /// DIR exists, is not empty and is not a previous report: it is left alone.
    ForeignDirectory(PathBuf),
    /// DIR exists and is not a directory (a symlink counts: replacing it would replace the link).
    NotADirectory(PathBuf),
    /// A file system operation on `path` failed.
    Io { path: PathBuf, source: io::Error },
    /// plotters could not draw a chart.
    Chart(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::ForeignDirectory(path) => write!(
                f,
                "refusing to write the report into {}: it is not empty and not a previous kafsim report (no {REPORT_MARKER} file); choose a new or empty directory",
                path.display()
            ),
            ReportError::NotADirectory(path) => {
                write!(f, "cannot write the report into {}: it is not a directory", path.display())
            }
            ReportError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ReportError::Chart(detail) => write!(f, "drawing a chart failed: {detail}"),
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Writes `index.html`, `results.json` and `summary.md` for `results` (each shown on its
/// own) and `sweep` (its comparison, then each point) into `dir`, atomically.
/// For a single run pass `(&[result], None)`; for a sweep `(&[], Some(&sweep))`.
pub fn write_report(
    dir: &Path,
    results: &[BenchResult],
    sweep: Option<&Sweep>,
) -> Result<(), ReportError> {
    destination_state(dir)?;
    let files = [
        ("index.html", render_html(results, sweep)?),
        ("results.json", render_results_json(results, sweep)),
        ("summary.md", render_markdown(results, sweep)),
    ];
    write_atomically(dir, &files)
}

/// [`write_report`] plus OpenMessaging Benchmark result files (`omb.rs`): `omb.json` for
/// the first run (or sweep point), `omb-2.json` ... for the others, each with `driver` naming
/// the sweep point, so `create_charts.py omb*.json` draws them side by side.
pub fn write_bench_report(
    dir: &Path,
    results: &[BenchResult],
    sweep: Option<&Sweep>,
    shape: &OmbShape,
) -> Result<(), ReportError> {
    destination_state(dir)?;
    let mut files = vec![
        ("index.html".to_string(), render_html(results, sweep)?),
        (
            "results.json".to_string(),
            render_results_json(results, sweep),
        ),
        ("summary.md".to_string(), render_markdown(results, sweep)),
    ];
    let runs = results.iter().map(|r| (r, shape.driver.clone())).chain(
        sweep
            .into_iter()
            .flat_map(|s| &s.points)
            .map(|p| (&p.result, format!("{} ({})", shape.driver, p.label()))),
    );
    for (i, (result, driver)) in runs.enumerate() {
        let name = if i == 0 {
            "omb.json".to_string()
        } else {
            format!("omb-{}.json", i + 1)
        };
        let shape = OmbShape {
            driver,
            ..shape.clone()
        };
        files.push((name, render_omb(result, &shape)));
    }
    let refs: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    write_atomically(dir, &refs)
}

/// What is at the destination now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    Missing,
    Empty,
    PreviousReport,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn destination_state(dir: &Path) -> Result<Destination, ReportError> {
    let metadata = match fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Destination::Missing),
        Err(error) => return Err(io_error(dir)(error)),
    };
    if !metadata.is_dir() {
        return Err(ReportError::NotADirectory(dir.to_path_buf()));
    }
    if dir.join(REPORT_MARKER).is_file() {
        return Ok(Destination::PreviousReport);
    }
    let mut entries = fs::read_dir(dir).map_err(io_error(dir))?;
    match entries.next() {
        None => Ok(Destination::Empty),
        Some(_) => Err(ReportError::ForeignDirectory(dir.to_path_buf())),
    }
}

/// Writes `files` (name, contents) and the marker into a temporary sibling of `dir`, then
/// moves it into place. On any error the temporary directory is removed.
pub fn write_atomically(dir: &Path, files: &[(&str, String)]) -> Result<(), ReportError> {
    let destination = destination_state(dir)?;
    let (parent, name) = split_path(dir)?;
    fs::create_dir_all(&parent).map_err(io_error(&parent))?;
    let pid = std::process::id();
    let temporary = parent.join(format!(".{name}.kafsim-tmp-{pid}"));
    if temporary.exists() {
        fs::remove_dir_all(&temporary).map_err(io_error(&temporary))?;
    }
    fs::create_dir(&temporary).map_err(io_error(&temporary))?;
    let written = write_files(&temporary, files)
        .and_then(|()| move_into_place(&temporary, dir, destination, &parent, &name, pid));
    if written.is_err() {
        // The error being returned is the one to report; removal is best effort.
        let _ = fs::remove_dir_all(&temporary);
    }
    written?;
    // Make the renames durable; not every file system can sync a directory.
    if let Ok(parent_dir) = File::open(&parent) {
        let _ = parent_dir.sync_all();
    }
    Ok(())
}

/// The parent directory (`.` for a bare name) and the final name of `dir`.
fn split_path(dir: &Path) -> Result<(PathBuf, String), ReportError> {
    let name = dir.file_name().ok_or_else(|| ReportError::Io {
        path: dir.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "the report directory needs a name",
        ),
    })?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_string_lossy().into_owned()))
}

fn write_files(directory: &Path, files: &[(&str, String)]) -> Result<(), ReportError> {
    for (name, contents) in files {
        assert!(
            *name != REPORT_MARKER,
            "reports: a report file may not be named {REPORT_MARKER}"
        );
        write_file(&directory.join(name), contents)?;
    }
    // The marker goes last: a directory holding it is a complete report.
    write_file(&directory.join(REPORT_MARKER), "kafsim report\n")
}

fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    let mut file = File::create(path).map_err(io_error(path))?;
    file.write_all(contents.as_bytes())
        .map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Replaces whatever is at `dir` by `temporary`. A previous report is first moved aside, and
/// moved back if the new one cannot take its place.
fn move_into_place(
    temporary: &Path,
    dir: &Path,
    destination: Destination,
    parent: &Path,
    name: &str,
    pid: u32,
) -> Result<(), ReportError> {
    match destination {
        Destination::Missing => fs::rename(temporary, dir).map_err(io_error(dir)),
        Destination::Empty => {
            fs::remove_dir(dir).map_err(io_error(dir))?;
            fs::rename(temporary, dir).map_err(io_error(dir))
        }
        Destination::PreviousReport => {
            let previous = parent.join(format!(".{name}.kafsim-old-{pid}"));
            if previous.exists() {
                fs::remove_dir_all(&previous).map_err(io_error(&previous))?;
            }
            fs::rename(dir, &previous).map_err(io_error(dir))?;
            if let Err(error) = fs::rename(temporary, dir) {
                let _ = fs::rename(&previous, dir);
                return Err(io_error(dir)(error));
            }
            fs::remove_dir_all(&previous).map_err(io_error(&previous))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory of this test's own under the system temp dir.
    fn scratch(test: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("kafsim-reports-{test}-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).unwrap();
        }
        fs::create_dir_all(&path).unwrap();
        path
    }

    fn files(text: &str) -> Vec<(&'static str, String)> {
        vec![
            ("index.html", text.to_string()),
            ("summary.md", text.to_string()),
        ]
    }

    fn entry_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_a_new_directory_with_the_marker() {
        let root = scratch("new");
        let dir = root.join("nested").join("out");
        write_atomically(&dir, &files("one")).unwrap();
        assert_eq!(
            entry_names(&dir),
            [REPORT_MARKER, "index.html", "summary.md"]
        );
        assert_eq!(fs::read_to_string(dir.join("index.html")).unwrap(), "one");
        assert_eq!(
            entry_names(&root.join("nested")),
            ["out"],
            "no temporary left"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn writes_into_an_empty_directory() {
        let root = scratch("empty");
        let dir = root.join("out");
        fs::create_dir(&dir).unwrap();
        write_atomically(&dir, &files("one")).unwrap();
        assert!(dir.join(REPORT_MARKER).is_file());
        assert_eq!(entry_names(&root), ["out"]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn refuses_a_non_empty_foreign_directory_and_leaves_it_alone() {
        let root = scratch("foreign");
        let dir = root.join("src");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("main.rs"), "fn main() {}").unwrap();
        let error = write_atomically(&dir, &files("one")).unwrap_err();
        assert!(matches!(error, ReportError::ForeignDirectory(_)), "{error}");
        assert!(error.to_string().contains("not a previous kafsim report"));
        assert_eq!(entry_names(&dir), ["main.rs"]);
        assert_eq!(entry_names(&root), ["src"], "no temporary left");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn replaces_a_previous_report_whole() {
        let root = scratch("replace");
        let dir = root.join("out");
        write_atomically(&dir, &files("one")).unwrap();
        fs::write(dir.join("stale.svg"), "from an older version").unwrap();
        write_atomically(&dir, &files("two")).unwrap();
        assert_eq!(
            entry_names(&dir),
            [REPORT_MARKER, "index.html", "summary.md"]
        );
        assert_eq!(fs::read_to_string(dir.join("summary.md")).unwrap(), "two");
        assert_eq!(entry_names(&root), ["out"], "no temporary or old copy left");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_and_keeps_the_previous_report() {
        let root = scratch("failure");
        let dir = root.join("out");
        write_atomically(&dir, &files("one")).unwrap();
        // A file in a missing subdirectory cannot be created.
        let broken = vec![
            ("index.html", "two".to_string()),
            ("missing/x.svg", String::new()),
        ];
        let error = write_atomically(&dir, &broken).unwrap_err();
        assert!(matches!(error, ReportError::Io { .. }), "{error}");
        assert_eq!(entry_names(&root), ["out"], "no temporary left");
        assert_eq!(fs::read_to_string(dir.join("index.html")).unwrap(), "one");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn refuses_a_file_in_the_way() {
        let root = scratch("file");
        let dir = root.join("out");
        fs::write(&dir, "a file").unwrap();
        let error = write_atomically(&dir, &files("one")).unwrap_err();
        assert!(matches!(error, ReportError::NotADirectory(_)), "{error}");
        assert_eq!(fs::read_to_string(&dir).unwrap(), "a file");
        fs::remove_dir_all(root).unwrap();
    }
}
