//! `aborted-read` (Jepsen's G1a, `jepsen.tests.kafka/g1a-cases`): a consumer handed the
//! application a value that was never committed: a value of a transaction that was aborted,
//! or a value whose send definitely failed (`SendFail`, never acknowledged).
//!
//! Under `read_committed` this is never allowed: the fetch stops at the last stable offset and
//! the client drops aborted batches, so even a poll *before* the abort is a violation (it read
//! data of a transaction that had not committed). Under `read_uncommitted` reading aborted
//! transactions' data is what the setting does: it is still reported (the user sees what the
//! setting costs), and such scenarios allow or expect the kind. A definitely failed send read
//! by anyone is a violation whatever the isolation level.
//!
//! Values of committed transactions are fine, and so are values of transactions still open
//! at the end (the checker cannot tell their fate; see the must-have-committed inference in
//! [`super::index`]). Evident at the later of the poll and the abort / failure; reported once
//! per (group, value).

use super::index::FastSet as HashSet;
use super::index::HistoryIndex;
use super::{value_name, CheckConfig, Collector};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::ValueId;

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    if !index.has_uncommitted_values() {
        return; // no read can be an aborted read: no need to walk the polls
    }
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
        let (evident, why) = if let Some(aborted_at) = index.aborted_at(value) {
            let (producer, txn) = index
                .txn_of(value)
                .expect("aborted value has a transaction");
            (
                aborted_at,
                format!(
                    "of transaction {txn} of {} aborted at {aborted_at}",
                    config.names.producer(producer)
                ),
            )
        } else if let Some(failed_at) = index.failed_at(value) {
            (
                failed_at,
                format!("whose send definitely failed at {failed_at}"),
            )
        } else {
            continue;
        };
        if !reported.insert((group, value)) {
            continue;
        }
        let isolation = if config.read_committed(group) {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        out.push(
            Violation::new(
                ViolationKind::AbortedRead,
                entry.at.max(evident),
                format!(
                    "{} ({isolation}) read {} at {} at {}, {why}",
                    config.member_name(group, member),
                    value_name(value),
                    config.names.at(partition, offset),
                    entry.at,
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
    use kafsim_engine::protocol::ErrorCode;

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
    fn committed_or_open_values_are_fine() {
        let mut s = Story::new();
        s.txn_value(1, 0, 2, 2)
            .send(1, 0, 2, 0, 1)
            .txn_commit(2, 0, 2);
        s.txn_value(2, 0, 3, 3).send(2, 0, 3, 0, 2);
        s.poll(4, 1, 0, 0, 1, 2).poll(4, 1, 0, 0, 2, 3);
        s.poll(4, 0, 0, 0, 1, 2).poll(4, 0, 0, 0, 2, 3);
        let cfg = config(vec![group(0, false, false), group(1, true, false)]);
        assert_eq!(run(check, &s, &cfg), vec![]);
    }

    #[test]
    fn read_uncommitted_reading_aborted_data_is_reported_as_what_it_costs() {
        let s = three_transactions();
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![AbortedRead]);
        assert!(
            found[0].detail.contains("(read_uncommitted)"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn reading_a_definitely_failed_send_is_an_aborted_read() {
        // Jepsen's g1a: a known-failed write visible to a read.
        let mut s = Story::new();
        s.send(1, 0, 2, 0, 0);
        s.invoke(1, 0, 1, None).fail(2, 0, 1);
        s.poll(3, 0, 0, 0, 0, 2);
        let cfg = config(vec![group(0, false, false)]);
        assert_eq!(
            run(check, &s, &cfg),
            vec![],
            "the acknowledged value is fine"
        );
        s.poll(4, 0, 0, 0, 1, 1);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![AbortedRead]);
        assert!(
            found[0].detail.contains("definitely failed"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn a_send_that_may_have_landed_is_no_aborted_read() {
        // A timeout or a lost connection is Jepsen's :info, not :fail: the record may be in
        // the log (a broker's REQUEST_TIMED_OUT comes after the leader appended). Reading it
        // is fine whatever error the producer reported.
        let cfg = config(vec![group(0, true, false)]);
        for error in [ErrorCode::RequestTimedOut, ErrorCode::NetworkException] {
            let mut s = Story::new();
            s.invoke(1, 0, 1, None).fail_with(2, 0, 1, error);
            s.poll(3, 0, 0, 0, 0, 1);
            assert_eq!(run(check, &s, &cfg), vec![], "{error:?}");
        }
        // A value the application resent after a definite failure (`on_error = "retry"`)
        // whose resend ended unknown may be in the log as well.
        let mut s = Story::new();
        s.invoke(1, 0, 1, None).fail(2, 0, 1);
        s.invoke(3, 0, 1, None).info(4, 0, 1);
        s.poll(5, 0, 0, 0, 0, 1);
        assert_eq!(run(check, &s, &cfg), vec![], "resent, then unknown");
        // The same story with a definite failure of the resend too is an aborted read.
        let mut s = Story::new();
        s.invoke(1, 0, 1, None).fail(2, 0, 1);
        s.invoke(3, 0, 1, None)
            .fail_with(4, 0, 1, ErrorCode::RecordListTooLarge);
        s.poll(5, 0, 0, 0, 0, 1);
        assert_eq!(kinds(&run(check, &s, &cfg)), vec![AbortedRead]);
    }
}
