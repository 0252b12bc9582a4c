//! The operator's admin client: the requests a person (or a deploy script) makes against the
//! cluster while it serves traffic, such as `kafka-topics.sh --alter --partitions N`
//! (Java `Admin.createPartitions` with `NewPartitions.increaseTo(N)`).
//!
//! The host tells the admin what to do with [`Admin::command_timer`]: a timer whose key names
//! the topic and its new total partition count. The admin sends CreatePartitions to every
//! controller (only the active one answers; KRaft brokers forward the request to it, which
//! kafsim shortens to a direct request) and sends again every `request.timeout.ms` until one
//! answers, at most [`MAX_ATTEMPTS`] times, as the Java admin client retries a call until
//! `default.api.timeout.ms` runs out. Asking for the total rather than an increment makes a
//! retry harmless: a request that already took effect is refused with InvalidPartitions.

use crate::node::{Cx, Node, NodeId, NodeTimer, Timer};
use crate::protocol::{CreatePartitionsRequest, ErrorCode, Message};
use crate::record::TopicId;
use crate::time::Duration;
use std::any::Any;
use std::collections::BTreeMap;

/// Every timer of an admin client: encoded to the kernel's [`Timer`] by `From` and decoded by
/// [`NodeTimer::decode`], the one place that knows their numeric kinds (which appear in
/// traces and never change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminTimer {
    /// A command from the host: grow `topic` to `count` partitions in total.
    CreatePartitions { topic: TopicId, count: u32 },
    /// The request of this correlation id got no answer in time: send it again.
    Retry(u64),
}

const TIMER_CREATE_PARTITIONS: u16 = 1;
const TIMER_RETRY: u16 = 2;

impl From<AdminTimer> for Timer {
    fn from(t: AdminTimer) -> Timer {
        match t {
            AdminTimer::CreatePartitions { topic, count } => Timer::new(
                TIMER_CREATE_PARTITIONS,
                ((topic.0 as u64) << 32) | count as u64,
            ),
            AdminTimer::Retry(corr) => Timer::new(TIMER_RETRY, corr),
        }
    }
}

impl NodeTimer for AdminTimer {
    const OWNER: &'static str = "an admin client's";

    fn try_decode(t: Timer) -> Option<AdminTimer> {
        match t.kind {
            TIMER_CREATE_PARTITIONS => Some(AdminTimer::CreatePartitions {
                topic: TopicId((t.key >> 32) as u32),
                count: t.key as u32,
            }),
            TIMER_RETRY => Some(AdminTimer::Retry(t.key)),
            _ => None,
        }
    }
}
/// Java admin `request.timeout.ms` default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per command: with the 30 s request timeout, about Java's 60 s
/// `default.api.timeout.ms` twice over; a command that still has no answer is given up.
pub const MAX_ATTEMPTS: u32 = 10;

/// One command in progress.
#[derive(Clone, Copy, Debug)]
struct Pending {
    topic: TopicId,
    count: u32,
    attempts: u32,
}

/// The admin client node.
pub struct Admin {
    controllers: Vec<NodeId>,
    next_corr: u64,
    pending: BTreeMap<u64, Pending>,
    /// Answers received, in order: (topic, count, error), for tests and replay.
    pub results: Vec<(TopicId, u32, ErrorCode)>,
}

impl Admin {
    pub fn new(controllers: Vec<NodeId>) -> Admin {
        assert!(
            !controllers.is_empty(),
            "an admin client needs a controller"
        );
        Admin {
            controllers,
            next_corr: 1,
            pending: BTreeMap::new(),
            results: Vec::new(),
        }
    }

    /// The timer that makes the admin grow `topic` to `count` partitions in total.
    pub fn command_timer(topic: TopicId, count: u32) -> Timer {
        AdminTimer::CreatePartitions { topic, count }.into()
    }

    /// Commands sent and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn send(&mut self, cx: &mut Cx, corr: u64) {
        let Some(p) = self.pending.get_mut(&corr) else {
            return;
        };
        p.attempts += 1;
        let request = CreatePartitionsRequest {
            correlation_id: corr,
            topic: p.topic,
            count: p.count,
        };
        for &c in &self.controllers {
            cx.send(c, Message::CreatePartitionsRequest(request.clone()));
        }
        cx.set_timer_after(REQUEST_TIMEOUT, AdminTimer::Retry(corr));
    }
}

impl Node for Admin {
    fn on_start(&mut self, _cx: &mut Cx) {}

    fn on_message(&mut self, cx: &mut Cx, _from: NodeId, msg: Message) {
        match msg {
            // A second answer (to a request sent again before the first answer came) finds
            // its command done.
            Message::CreatePartitionsResponse(r) => {
                if let Some(p) = self.pending.remove(&r.correlation_id) {
                    self.results.push((p.topic, p.count, r.error));
                }
            }
            // A request lost with its connection is sent again by its `Retry` timer, as the
            // Java admin client retries a call whose connection dropped.
            Message::ConnectionReset | Message::ConnectionRefused => {}
            other => unreachable!(
                "{}: {} is not an answer to anything an admin client sends",
                cx.me(),
                other.kind()
            ),
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match AdminTimer::decode(timer) {
            AdminTimer::CreatePartitions { topic, count } => {
                let corr = self.next_corr;
                self.next_corr += 1;
                let pending = Pending {
                    topic,
                    count,
                    attempts: 0,
                };
                self.pending.insert(corr, pending);
                self.send(cx, corr);
            }
            AdminTimer::Retry(corr) => {
                let exhausted = self
                    .pending
                    .get(&corr)
                    .is_some_and(|p| p.attempts >= MAX_ATTEMPTS);
                if exhausted {
                    let p = self.pending.remove(&corr).expect("checked");
                    self.results
                        .push((p.topic, p.count, ErrorCode::RequestTimedOut));
                } else {
                    self.send(cx, corr);
                }
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
