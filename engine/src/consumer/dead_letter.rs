//! The dead-letter topic of a consumer's handler (`on_error = "dead-letter"`): a record the
//! handler gives up on is produced to the group's dead-letter topic before the consumer moves
//! past it, so a poison record costs one retry budget and is never silently skipped. Apart
//! from the poll loop because it is a small producer inside the consumer, with its own
//! requests and retries.

use super::{poll, Consumer, Req};
use crate::app::failure::MAX_DLQ_ATTEMPTS;
use crate::node::Cx;
use crate::protocol::ErrorCode;
use crate::record::TopicPartition;
use crate::time::Instant;

/// A dead-letter produce of the record held by `processor`.
#[derive(Clone, Debug)]
pub(super) struct DeadLetter {
    pub(super) attempts: u32,
    pub(super) inflight: bool,
    pub(super) not_before: Instant,
}

impl Consumer {
    /// Start producing the failed record of `processor` to the dead-letter topic.
    pub(super) fn start_dead_letter(&mut self, processor: usize) {
        let dl = DeadLetter {
            attempts: 0,
            inflight: false,
            not_before: Instant::ZERO,
        };
        self.dead_letters.insert(processor, dl);
    }

    pub(super) fn dead_letter_failed(&mut self, processor: usize, not_before: Instant) {
        if let Some(dl) = self.dead_letters.get_mut(&processor) {
            dl.inflight = false;
            dl.not_before = not_before;
        }
    }

    pub(super) fn drive_dead_letters(&mut self, cx: &mut Cx) {
        let ready: Vec<usize> = self
            .dead_letters
            .iter()
            .filter(|(_, d)| !d.inflight && d.not_before <= cx.now())
            .map(|(p, _)| *p)
            .collect();
        for processor in ready {
            self.send_dead_letter(cx, processor);
        }
    }

    fn send_dead_letter(&mut self, cx: &mut Cx, processor: usize) {
        let topic = self.spec.dlq_topic.expect("dlq topic checked in new");
        let Some(rec) = self.procs.all[processor].current.map(|c| c.rec) else {
            self.dead_letters.remove(&processor);
            return;
        };
        let Some(count) = self.meta.counts.get(&topic).copied().filter(|c| *c > 0) else {
            self.meta.wanted = true;
            return;
        };
        let partition = rec
            .key
            .map_or(rec.value.0 % count as u64, |k| (k.0 % count) as u64);
        let tp = TopicPartition::new(topic, partition as u32);
        let Some(&(leader, _)) = self.meta.leaders.get(&tp) else {
            self.meta.wanted = true;
            return;
        };
        let dl = self
            .dead_letters
            .get_mut(&processor)
            .expect("pending dead letter");
        dl.attempts += 1;
        if dl.attempts > MAX_DLQ_ATTEMPTS {
            self.dead_letters.remove(&processor);
            return self.finish_record(cx, processor, false);
        }
        dl.inflight = true;
        let msg = poll::dead_letter_request(self.take_corr(), tp, &rec, cx.now());
        let timeout = self.config.request_timeout;
        self.send(cx, leader, timeout, Req::DeadLetter { processor }, msg);
    }

    pub(super) fn on_dead_letter_response(
        &mut self,
        cx: &mut Cx,
        processor: usize,
        resp: crate::protocol::ProduceResponse,
    ) {
        let error = resp
            .partitions
            .first()
            .map_or(ErrorCode::InvalidRequest, |p| p.error);
        if error != ErrorCode::None {
            if error.needs_metadata_refresh() {
                self.meta.wanted = true;
            }
            let backoff = cx.now() + self.config.retry_backoff;
            return self.dead_letter_failed(processor, backoff);
        }
        self.dead_letters.remove(&processor);
        if let Some(current) = self.procs.all[processor].current {
            cx.record(crate::history::HistoryEvent::DeadLetter {
                group: self.spec.group_index,
                member: self.spec.member_index,
                value: current.rec.value,
            });
        }
        self.finish_record(cx, processor, false);
    }
}
