//! `kafsim list`: the scenario library, one line per scenario (its name and the first
//! sentence of its description), sorted by file name. A file that does not parse is reported
//! on stderr with its line and key, and makes the exit status 2 once the listing is done, so
//! a broken library is never silently shortened.

use kafsim_sim::scenario::{self, Scenario};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ListArgs {
    /// Scenario directory (default: ./scenarios, else the source checkout's scenarios/)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn main(args: ListArgs) -> u8 {
    let dir = scenario::library_dir(args.dir.as_deref());
    let files = match scenario::library_files(&dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("kafsim list: cannot read {}: {e}", dir.display());
            return super::EXIT_BAD_INPUT;
        }
    };
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut failed = false;
    for file in &files {
        match scenario::load(file) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    print!("{}", render(&scenarios));
    if failed {
        super::EXIT_BAD_INPUT
    } else {
        super::EXIT_OK
    }
}

/// One line per scenario: the name padded to the longest, two spaces, the summary.
fn render(scenarios: &[Scenario]) -> String {
    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0);
    scenarios
        .iter()
        .map(|s| {
            let line = format!("{:width$}  {}", s.name, first_sentence(&s.description));
            format!("{}\n", line.trim_end())
        })
        .collect()
}

/// The description up to its first line break or the end of its first sentence (". ").
fn first_sentence(description: &str) -> &str {
    let line = description.lines().next().unwrap_or("").trim();
    match line.find(". ") {
        Some(end) => &line[..=end],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::first_sentence;

    #[test]
    fn first_sentence_stops_at_a_period_or_line() {
        assert_eq!(first_sentence("One thing. Another."), "One thing.");
        assert_eq!(
            first_sentence("acks=1 loses; a crash.\nMore."),
            "acks=1 loses; a crash."
        );
        assert_eq!(
            first_sentence("version 3.0 changed it"),
            "version 3.0 changed it"
        );
        assert_eq!(first_sentence(""), "");
    }
}
