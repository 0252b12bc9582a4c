//! Turns a `toml` error (a message and a byte span) into a [`ScenarioError`] with a dotted key
//! path such as `consumer_groups[1].handler.workers`. The toml crate knows the span but not the
//! path with array indices, so this walks the text up to the span: table headers (`[a.b]`,
//! `[[a]]`, counted per array) and the key assigned on the line. It is a best effort for
//! hand-written files; an inline table reports the key that holds it.

use super::error::{did_you_mean, Locator, ScenarioError};
use super::raw::{PROPERTY_VALUE_EXPECTED, TOP_LEVEL_KEYS};
use std::collections::BTreeMap;

/// Converts a toml error. A syntax error names the key of its own line only (the line may be
/// garbage); a type error inside a multi-line array names the key that holds the array.
pub fn from_toml(locator: Locator<'_>, error: &toml::de::Error, syntax: bool) -> ScenarioError {
    let span = error.span().unwrap_or(0..0);
    let raw_message = error.message().trim().to_string();
    let (mut message, hint, field) = explain(&raw_message);
    if syntax {
        message = format!("TOML syntax: {message}");
    }
    // A key missing from the top level is reported with the whole document as its span.
    let whole_document = span.start == 0 && span.end >= locator.text.trim_end().len();
    let mut path = if whole_document {
        String::new()
    } else {
        key_path_at(locator.text, span.start, !syntax)
    };
    let hint = misplaced_top_level(&path, field.as_deref()).or(hint);
    if let Some(field) = &field {
        if !path.ends_with(field.as_str()) {
            push_segment(&mut path, field);
        }
    }
    let mut out = locator.error(span, path, message);
    if error.span().is_none() || whole_document {
        out.line = 0;
        out.column = 0;
    }
    out.hint = hint;
    out
}

/// A reader's message and hint for toml's message, and the field it names (unknown or missing).
fn explain(raw: &str) -> (String, Option<String>, Option<String>) {
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("").to_string();
        let expected = backticked(rest.split_once(", expected").map_or("", |(_, e)| e));
        let known: Vec<&str> = expected.iter().map(String::as_str).collect();
        let hint = match did_you_mean(&field, &known) {
            Some(close) => format!("did you mean `{close}`?"),
            None if known.is_empty() => "this table takes no keys".to_string(),
            None => format!("expected one of: {}", known.join(", ")),
        };
        return (format!("unknown key `{field}`"), Some(hint), Some(field));
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("").to_string();
        let message = format!("missing required key `{field}`");
        return (message, None, Some(field));
    }
    if raw.starts_with(PROPERTY_VALUE_EXPECTED) {
        let hint = "quote a dotted property name: \"linger.ms\" = 5, not linger.ms = 5";
        return (raw.to_string(), Some(hint.to_string()), None);
    }
    if raw.starts_with("invalid type:") {
        return (readable_type_error(raw), None, None);
    }
    (raw.replace('\n', "; "), None, None)
}

/// A top-level key written below a table header lands in that table; say so.
fn misplaced_top_level(path: &str, field: Option<&str>) -> Option<String> {
    let field = field?;
    let nested = !path.is_empty() && path != field;
    (nested && TOP_LEVEL_KEYS.contains(&field))
        .then(|| format!("`{field}` is a top-level key: move it above the first [table] header"))
}

/// Every `name` between backticks in `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// "invalid type: string \"x\", expected i64" -> "expected an integer, found string \"x\"".
fn readable_type_error(raw: &str) -> String {
    let body = raw.trim_start_matches("invalid type:").trim();
    let Some((found, expected)) = body.rsplit_once(", expected ") else {
        return raw.to_string();
    };
    let expected = match expected {
        e if e.starts_with('i') || e.starts_with('u') => "an integer",
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a string" => "a string",
        "a sequence" => "an array",
        e if e.starts_with("struct") || e.starts_with("a map") => "a table",
        other => other,
    };
    let found = found.replace("sequence", "array").replace("map", "table");
    format!("expected {expected}, found {found}")
}

/// The dotted key path of the item at byte `offset`: the enclosing table and the key assigned
/// on that line or, with `look_back`, on the nearest line above (a multi-line array).
pub fn key_path_at(text: &str, offset: usize, look_back: bool) -> String {
    let mut table = String::new();
    let mut key: Option<String> = None;
    let mut arrays: BTreeMap<String, usize> = BTreeMap::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line_start > offset {
            break;
        }
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix("[[") {
            table = enter_header(header_name(header), true, &mut arrays);
            key = None;
        } else if let Some(header) = trimmed.strip_prefix('[') {
            table = enter_header(header_name(header), false, &mut arrays);
            key = None;
        } else if let Some(k) = assigned_key(trimmed) {
            key = Some(k);
        } else if !look_back {
            key = None;
        }
        line_start += line.len();
    }
    let mut path = table;
    if let Some(key) = key {
        push_segment(&mut path, &key);
    }
    path
}

fn push_segment(path: &mut String, segment: &str) {
    if !path.is_empty() && !segment.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
}

/// The text of a header up to its closing bracket.
fn header_name(after_bracket: &str) -> &str {
    after_bracket.split(']').next().unwrap_or("").trim()
}

/// The indexed path of a header, counting array-of-tables entries per parent entry.
fn enter_header(name: &str, is_array: bool, arrays: &mut BTreeMap<String, usize>) -> String {
    let segments = split_key(name);
    let mut path = String::new();
    for (i, segment) in segments.iter().enumerate() {
        push_segment(&mut path, segment);
        let last = i + 1 == segments.len();
        if last && is_array {
            let count = arrays.entry(path.clone()).or_insert(0);
            *count += 1;
            path = format!("{path}[{}]", *count - 1);
        } else if let Some(count) = arrays.get(&path) {
            path = format!("{path}[{}]", count.saturating_sub(1));
        }
    }
    path
}

/// The key of a `key = value` line, dotted keys joined, quotes removed.
fn assigned_key(line: &str) -> Option<String> {
    let first = line.chars().next()?;
    if !(first.is_ascii_alphanumeric()
        || first == '_'
        || first == '-'
        || first == '"'
        || first == '\'')
    {
        return None;
    }
    let eq = find_unquoted(line, '=')?;
    Some(split_key(line[..eq].trim()).join("."))
}

/// Byte index of `wanted` outside quotes.
fn find_unquoted(text: &str, wanted: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == wanted => return Some(i),
            None => {}
        }
    }
    None
}

/// Segments of a dotted key; a quoted segment ("linger.ms") stays whole.
fn split_key(key: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = key.trim();
    while !rest.is_empty() {
        let (segment, after) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = rest[1..].find(q).map_or(rest.len(), |i| i + 1);
                (&rest[1..end], rest.get(end + 1..).unwrap_or(""))
            }
            _ => match rest.find('.') {
                Some(dot) => (&rest[..dot], &rest[dot..]),
                None => (rest, ""),
            },
        };
        segments.push(segment.trim().to_string());
        rest = after.trim_start().trim_start_matches('.').trim_start();
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"name = "x"
[cluster]
brokers = 3
[cluster.config]
"linger.ms" = 5
[[producers]]
topic = "a"
[[producers]]
topic = "b"
[producers.config]
acks = "1"
[[consumer_groups]]
handler = { workers = 0 }
[[faults.schedule]]
at = "1s"
"#;

    fn path_of(needle: &str) -> String {
        key_path_at(DOC, DOC.find(needle).expect("needle in doc"), true)
    }

    #[test]
    fn paths_follow_headers_and_array_indices() {
        assert_eq!(path_of("\"x\""), "name");
        assert_eq!(path_of("3"), "cluster.brokers");
        assert_eq!(path_of("5"), "cluster.config.linger.ms");
        assert_eq!(path_of("\"a\""), "producers[0].topic");
        assert_eq!(path_of("\"b\""), "producers[1].topic");
        assert_eq!(path_of("\"1\""), "producers[1].config.acks");
        assert_eq!(path_of("workers"), "consumer_groups[0].handler");
        assert_eq!(path_of("\"1s\""), "faults.schedule[0].at");
    }

    #[test]
    fn type_errors_read_well() {
        assert_eq!(
            readable_type_error("invalid type: string \"three\", expected i64"),
            "expected an integer, found string \"three\""
        );
    }
}
