//! `aborted-read`: a `read_committed` consumer polled a value sent in a transaction that was
//! aborted (Jepsen's G1a for Kafka). Values of committed transactions are fine, and so are
//! values of transactions still open at the end (the checker cannot tell their fate). A poll
//! before the abort is still a violation: a `read_committed` fetch stops at the last stable
//! offset, so it can never return a value of a transaction that has not committed yet.
//!
//! Evident at the later of the poll and the abort; reported once per (group, value).

use super::index::FastSet as HashSet;
use super::index::HistoryIndex;
use super::{value_name, CheckConfig, Collector};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::ValueId;

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    let mut reported: HashSet<(u32, ValueId)> = HashSet::default();
    for entry in history.entries() {
        let HistoryEvent::Poll {
            group,
            member,
            partition,
            offset,
            value,
            ..
        } = entry.event
        else {
            continue;
        };
        if !config.read_committed(group) {
            continue;
        }
        let Some(aborted_at) = index.aborted_at(value) else {
            continue;
        };
        if !reported.insert((group, value)) {
            continue;
        }
        let (producer, txn) = index
            .txn_of(value)
            .expect("aborted value has a transaction");
        out.push(
            Violation::new(
                ViolationKind::AbortedRead,
                entry.at.max(aborted_at),
                format!(
                    "{} (read_committed) read {} at {} at {}, of transaction {txn} \
                     of {} aborted at {aborted_at}",
                    config.member_name(group, member),
                    value_name(value),
                    config.names.at(partition, offset),
                    entry.at,
                    config.names.producer(producer),
                ),
            )
            .at_partition(partition)
            .at_offset(offset)
            .of_value(value),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;

    /// Transaction 1 of producer 0 (value 1) aborted at 3 ms; transaction 2 (value 2)
    /// committed; transaction 3 (value 3) still open.
    fn three_transactions() -> Story {
        let mut s = Story::new();
        s.txn_value(1, 0, 1, 1).send(1, 0, 1, 0, 0);
        s.txn_value(1, 0, 2, 2)
            .send(1, 0, 2, 0, 1)
            .txn_commit(2, 0, 2);
        s.txn_value(2, 0, 3, 3).send(2, 0, 3, 0, 2);
        s.poll(2, 0, 0, 0, 0, 1).txn_abort(3, 0, 1);
        s
    }

    #[test]
    fn read_committed_poll_of_an_aborted_value_fires_once() {
        let mut s = three_transactions();
        s.poll(4, 0, 1, 0, 0, 1);
        let found = run(check, &s, &config(vec![group(0, true, false)]));
        assert_eq!(kinds(&found), vec![AbortedRead]);
        assert_eq!((found[0].value, found[0].at.as_millis()), (Some(v(1)), 3));
    }

    #[test]
    fn committed_open_or_read_uncommitted_is_fine() {
        let mut s = three_transactions();
        s.poll(4, 1, 0, 0, 1, 2).poll(4, 1, 0, 0, 2, 3);
        let cfg = config(vec![group(0, false, false), group(1, true, false)]);
        assert_eq!(run(check, &s, &cfg), vec![]);
    }
}
