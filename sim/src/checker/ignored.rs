//! Sends whose outcome the application ignored (`on_error = "ignore"`): a sarama
//! `AsyncProducer` whose `Errors()` channel nobody reads, a kafka-go `Writer{Async: true}`
//! without `Completion`, Java `send(record)` without a callback.
//!
//! Such an application takes a value as sent the moment it hands it over (it has answered
//! its caller, committed its input, moved on), so in Jepsen's terms the write was
//! acknowledged *to the application's caller* at invoke time. A value of such a producer that
//! the client never acknowledged (the send failed, ended unknown, or the process died with it
//! in the buffer) and that a group consuming its topic never read is a loss nobody was told
//! of: `unseen` for that group, and `sink-loss` for a group with a sink that never wrote it.
//! Values the client did acknowledge are judged by `delivery` and `sink` as every other.
//!
//! A value with an unknown outcome that did reach the log and was read is no loss: the
//! application was lucky, not wrong.

use super::index::{FastMap as HashMap, FastSet as HashSet, HistoryIndex};
use super::{value_name, CheckConfig, Collector};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::ValueId;

/// The client's last word on a value, for the detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LastWord {
    Nothing,
    Failed,
    Unknown,
    Acked,
}

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    if config.ignoring_errors.is_empty() {
        return;
    }
    let ignores = |producer: u32| config.ignoring_errors.contains(&producer);
    // Values of ignoring producers, in invoke order, with the client's last word on each.
    let mut order: Vec<ValueId> = Vec::new();
    let mut last: HashMap<ValueId, LastWord> = HashMap::default();
    let mut read: HashSet<(u32, ValueId)> = HashSet::default();
    let mut sunk: HashSet<(u32, ValueId)> = HashSet::default();
    for entry in history.entries() {
        match entry.event {
            HistoryEvent::SendInvoke {
                producer, value, ..
            } if ignores(producer) && !last.contains_key(&value) => {
                last.insert(value, LastWord::Nothing);
                order.push(value);
            }
            HistoryEvent::SendOk { value, .. } => {
                if let Some(word) = last.get_mut(&value) {
                    *word = LastWord::Acked;
                }
            }
            HistoryEvent::SendFail { value, .. } => {
                set_unless_acked(&mut last, value, LastWord::Failed)
            }
            HistoryEvent::SendInfo { value, .. } => {
                set_unless_acked(&mut last, value, LastWord::Unknown)
            }
            HistoryEvent::Poll { group, value, .. } => {
                read.insert((group, value));
            }
            HistoryEvent::SinkWrite { group, value, .. }
            | HistoryEvent::DeadLetter { group, value, .. } => {
                sunk.insert((group, value));
            }
            _ => {}
        }
    }
    for value in order {
        let word = last[&value];
        if word == LastWord::Acked || !index.committed_or_plain(value) {
            continue;
        }
        let Some(invocation) = index.invocation(value) else {
            continue;
        };
        let what = match word {
            LastWord::Failed => "its send failed",
            LastWord::Unknown => "its send ended with an unknown outcome",
            _ => "its producer never reported an outcome (the process died with it)",
        };
        let sent = format!(
            "{} handed over by producer {} at {} and taken as sent (on_error = \"ignore\"): {what}",
            value_name(value),
            invocation.producer,
            invocation.at
        );
        for group in config
            .groups
            .iter()
            // A value never acknowledged has no known partition: only consumers of the whole
            // topic owe it (a standalone consumer of some partitions is not judged on it).
            .filter(|g| g.consumes(invocation.topic) && g.partitions.is_none())
        {
            if !read.contains(&(group.group, value)) {
                out.push(
                    Violation::new(
                        ViolationKind::Unseen,
                        config.end,
                        format!("{sent}, and {} never read it", group.name),
                    )
                    .of_value(value),
                );
            }
            if group.has_sink && !sunk.contains(&(group.group, value)) {
                out.push(
                    Violation::new(
                        ViolationKind::SinkLoss,
                        config.end,
                        format!("{sent}, and it never reached the sink of {}", group.name),
                    )
                    .of_value(value),
                );
            }
        }
    }
}

fn set_unless_acked(last: &mut HashMap<ValueId, LastWord>, value: ValueId, word: LastWord) {
    if let Some(w) = last.get_mut(&value) {
        if *w != LastWord::Acked {
            *w = word;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;

    fn ignoring(groups: Vec<crate::checker::GroupCheck>) -> crate::checker::CheckConfig {
        let mut c = config(groups);
        c.ignoring_errors = vec![0];
        c
    }

    #[test]
    fn a_failed_send_the_application_ignored_is_lost() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).invoke(2, 0, 2, None).fail(3, 0, 2);
        s.poll(4, 0, 0, 0, 0, 1).sink(5, 0, 0, 0, 1);
        let found = run(check, &s, &ignoring(vec![group(0, false, true)]));
        assert_eq!(kinds(&found), vec![Unseen, SinkLoss], "{found:?}");
        assert!(found.iter().all(|f| f.value == Some(v(2))));
        assert!(
            found[0].detail.contains("on_error = \"ignore\""),
            "{found:?}"
        );
        assert!(found[0].detail.contains("send failed"), "{found:?}");
    }

    #[test]
    fn the_same_history_without_ignore_owes_nothing() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).invoke(2, 0, 2, None).fail(3, 0, 2);
        s.poll(4, 0, 0, 0, 0, 1);
        assert!(run(check, &s, &config(vec![group(0, false, false)])).is_empty());
    }

    #[test]
    fn unknown_but_read_or_later_acknowledged_is_no_loss() {
        let mut s = Story::new();
        // v1: unknown, yet written and read. v2: unknown, then resent and acknowledged (the
        // delivery checker judges it). v3: never got an outcome and was never read.
        s.invoke(1, 0, 1, None).info(2, 0, 1).poll(3, 0, 0, 0, 0, 1);
        s.invoke(4, 0, 2, None).info(5, 0, 2).send(6, 0, 2, 0, 1);
        s.invoke(7, 0, 3, None);
        let found = run(check, &s, &ignoring(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![Unseen], "{found:?}");
        assert_eq!(found[0].value, Some(v(3)));
        assert!(found[0].detail.contains("never reported an outcome"));
    }

    #[test]
    fn other_producers_are_not_judged_by_this() {
        let mut s = Story::new();
        s.invoke(1, 1, 1, None).fail(2, 1, 1);
        assert!(run(check, &s, &ignoring(vec![group(0, false, false)])).is_empty());
    }
}
