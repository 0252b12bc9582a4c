//! What several CLI tests do after running the binary.

use std::path::Path;
use std::process::Output;

/// The JSON file a successful `kafsim` run wrote to `json`; a failed run fails the test
/// with its stderr.
pub fn json_written_by(out: &Output, json: impl AsRef<Path>) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(json.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", json.as_ref().display()));
    serde_json::from_str(&text).expect("the JSON kafsim wrote parses")
}
