//! The member's statements to its group's database ([`crate::app::sink`]): sending them,
//! matching the answers, retrying what failed.
//!
//! A processor that finished a record holds it until the database answered its insert
//! ([`Consumer::finish_record`] starts the insert, [`Consumer::on_statement_answer`] ends it),
//! then marks it. An offsets-in-sink member's newly assigned partitions wait in
//! [`Need::Stored`] until the database said where to resume: at its stored offset (a seek,
//! recorded as a `PositionReset`), or, where nothing is stored yet, from the group's
//! committed offset as usual.

use super::{Consumer, Need, Req};
use crate::app::sink::STATEMENT_TIMEOUT;
use crate::history::ResetCause;
use crate::node::Cx;
use crate::protocol::{DatabaseRequest, DatabaseResponse, Message, Statement, StatementResult};
use crate::record::TopicPartition;

/// Which pending statement an answer or a failure is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementFor {
    /// The insert of the record processor `usize` holds.
    Insert(usize),
    /// The read of stored offsets.
    Read,
}

impl Consumer {
    /// Send every statement that is due: a new one, or a retry after its backoff.
    pub(super) fn drive_database(&mut self, cx: &mut Cx) {
        let Some(db) = self.sink.database() else {
            return;
        };
        if self.sink.stores_offsets() && self.sink.read.is_none() {
            let tps: Vec<TopicPartition> = self
                .parts
                .iter()
                .filter(|(_, p)| p.need == Need::Stored && !p.busy)
                .map(|(tp, _)| *tp)
                .collect();
            if !tps.is_empty() {
                for tp in &tps {
                    self.parts.get_mut(tp).expect("listed").busy = true;
                }
                self.sink.read_offsets(tps);
            }
        }
        let now = cx.now();
        let mut due: Vec<StatementFor> = self
            .sink
            .inserts
            .iter()
            .filter(|(_, p)| !p.inflight && p.not_before <= now)
            .map(|(i, _)| StatementFor::Insert(*i))
            .collect();
        if self
            .sink
            .read
            .as_ref()
            .is_some_and(|p| !p.inflight && p.not_before <= now)
        {
            due.push(StatementFor::Read);
        }
        for which in due {
            let pending = match which {
                StatementFor::Insert(i) => self.sink.inserts.get_mut(&i),
                StatementFor::Read => self.sink.read.as_mut(),
            }
            .expect("due statement");
            pending.inflight = true;
            pending.attempts += 1;
            let statement = pending.statement.clone();
            let msg = Message::DatabaseRequest(DatabaseRequest {
                correlation_id: self.take_corr(),
                statement,
            });
            self.send(cx, db, STATEMENT_TIMEOUT, Req::Statement(which), msg);
        }
    }

    /// The database answered.
    pub(super) fn on_statement_answer(
        &mut self,
        cx: &mut Cx,
        which: StatementFor,
        resp: DatabaseResponse,
    ) {
        match (which, resp.result) {
            (StatementFor::Insert(i), StatementResult::Committed | StatementResult::Refused) => {
                if self.sink.inserts.remove(&i).is_some() {
                    self.after_sink(cx, i);
                }
            }
            (StatementFor::Read, StatementResult::Offsets(stored)) => {
                let asked = match self.sink.read.take().map(|p| p.statement) {
                    Some(Statement::ReadOffsets(tps)) => tps,
                    _ => Vec::new(),
                };
                // Nothing stored: the committed offset, or for a standalone consumer its
                // `start` (one that cannot commit has no committed offset to ask for).
                let stored_fallback = match &self.spec.standalone {
                    Some(s) if s.start != super::Start::Committed => Need::Reset(ResetCause::Start),
                    _ => Need::Committed,
                };
                for tp in asked {
                    let Some(p) = self.parts.get_mut(&tp) else {
                        continue; // revoked meanwhile
                    };
                    if p.need != Need::Stored {
                        continue;
                    }
                    p.busy = false;
                    match stored.iter().find(|(t, _)| *t == tp).and_then(|(_, n)| *n) {
                        // "Offsets stored with the results": seek to the stored offset
                        // instead of the committed one (KafkaConsumer javadoc, "Storing
                        // Offsets Outside Kafka").
                        Some(next) => self.seek(cx, tp, next, ResetCause::Seek),
                        None => p.need = stored_fallback,
                    }
                }
            }
            (which, result) => panic!(
                "consumer {}: database answered {result:?} to {which:?}",
                cx.me()
            ),
        }
    }

    /// A statement got no answer in time or lost its connection: retry it after a backoff.
    pub(super) fn statement_failed(&mut self, cx: &mut Cx, which: StatementFor) {
        let now = cx.now();
        let pending = match which {
            StatementFor::Insert(i) => self.sink.inserts.get_mut(&i),
            StatementFor::Read => self.sink.read.as_mut(),
        };
        if let Some(p) = pending {
            p.failed(now);
        }
    }
}
