//! JUnit XML of a campaign, written from the campaign's JSON document alone, so that
//! `kafsim run --junit` and `kafsim merge --junit` of its shards give the same file.
//!
//! One `<testcase>` per seed; a failing seed has exactly one `<failure>`: its message names the
//! seed's kinds, its text lists the violations (kind, simulated time, detail) and ends with
//! the replay command. CI front ends (GitHub's test reporters, Jenkins, GitLab) show one red
//! test per failing seed this way, instead of one per violation.

use super::run::{CampaignJson, ViolationJson};
use kafsim_sim::violation::ViolationKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The kinds of one seed's violations in DESIGN order ("lost-write, unseen").
fn kinds_of(violations: &[&ViolationJson]) -> Vec<String> {
    let mut kinds: BTreeMap<(Option<ViolationKind>, &str), ()> = BTreeMap::new();
    for v in violations {
        kinds.insert((ViolationKind::parse(&v.kind), v.kind.as_str()), ());
    }
    kinds.keys().map(|(_, k)| k.to_string()).collect()
}

/// JUnit XML: one testsuite, one testcase per seed, one `<failure>` per failing seed.
pub fn from_campaign(doc: &CampaignJson) -> String {
    let name = xml_escape(&doc.scenario);
    let seeds = doc.seed_list();
    let mut by_seed: BTreeMap<u64, Vec<&ViolationJson>> = BTreeMap::new();
    for v in &doc.violations {
        by_seed.entry(v.seed).or_default().push(v);
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"kafsim.{name}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
        seeds.len(),
        doc.failed_seeds.len(),
        doc.stats.wall_seconds
    );
    for seed in seeds {
        let _ = write!(
            out,
            "  <testcase classname=\"kafsim.{name}\" name=\"seed {seed}\""
        );
        if !doc.failed_seeds.contains(&seed) {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        let listed = by_seed.get(&seed).cloned().unwrap_or_default();
        let kinds = kinds_of(&listed);
        let mut body = String::new();
        for v in &listed {
            let _ = writeln!(body, "{} at {:.3} ms: {}", v.kind, v.at_ms, v.detail);
        }
        if let Some(v) = listed.first() {
            let _ = write!(body, "reproduce: {}", v.repro);
        }
        let _ = writeln!(
            out,
            "    <failure type=\"{}\" message=\"seed {seed}: {}\">{}</failure>",
            xml_escape(kinds.first().map_or("failure", String::as_str)),
            xml_escape(&kinds.join(", ")),
            xml_escape(&body)
        );
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}
