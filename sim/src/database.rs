//! The database a consumer group's members share: the service's sink (DESIGN §8 "Service",
//! fault target `database:GROUP`). Not Kafka, so it lives here, hosted through the same
//! [`Node`] interface as every engine node and reached over the simulated network.
//!
//! Each statement ([`Statement`]) executes in its own transaction and takes `latency` from
//! its arrival (statements of different connections run concurrently, as a database server
//! runs one backend per connection); the answer is sent when it commits. What the statement
//! does depends on the group's sink:
//! - `plain`: insert the result row; a second insert of a value stores it twice;
//! - `dedupe`: insert with a unique constraint on the record id (value id): a value already
//!   stored is refused (`SinkRefused`, counted) and not stored again;
//! - `offsets-in-sink`: insert the result and set the partition's stored next offset to
//!   `offset + 1` in one transaction, guarded by `WHERE next <= offset`: a record the stored
//!   offset has already passed (a replay by a member that resumed from an older position, or
//!   by a zombie that lost the partition) rolls back and is refused. A member reads the stored
//!   offsets when a partition is assigned and resumes there (KafkaConsumer javadoc, "Storing
//!   Offsets Outside Kafka": seek to the offset stored with the results).
//!
//! Every committed row is a `SinkWrite` history fact, recorded at the commit: the sink
//! checkers read these, the database's committed rows. Commits are durable: each is appended
//! to the database's own file before it is answered, and a crashed database recovers every
//! row from it at restart (a process crash keeps the page cache; the statement latency stands
//! for the commit's WAL flush, so power loss is not a database fault). A statement still
//! executing when the database crashes never committed; its member sees the connection reset
//! (or a timeout, if the database is paused or cut off) and retries it.

use kafsim_engine::app::SinkKind;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::node::{DiskData, DiskEntry, FileId};
use kafsim_engine::protocol::{
    DatabaseRequest, DatabaseResponse, Message, Row, Statement, StatementResult,
};
use kafsim_engine::{Cx, Duration, Node, NodeId, Timer, TopicPartition, ValueId};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Default time one statement takes in the database, from its arrival to its commit: a
/// single-row INSERT with a synchronous commit on a Postgres server on the same LAN is a few
/// hundred microseconds. `database_latency` in the group's handler changes it.
pub const DEFAULT_LATENCY: Duration = Duration::from_micros(500);
/// Largest `database_latency` a scenario may set (it must stay well under the members'
/// statement timeout, `kafsim_engine::app::sink::STATEMENT_TIMEOUT`).
pub const MAX_LATENCY: Duration = Duration::from_secs(1);
/// The database's table file.
pub const TABLE_FILE: FileId = FileId::Named("database");
/// Modelled bytes of one committed row (result, record id, source position).
const ROW_BYTES: u32 = 64;
/// Most statements executing at once (connections × one statement each); past it the
/// members are misbehaving.
const MAX_EXECUTING: usize = 100_000;
/// Timer: a statement finished executing (key: its sequence number).
const TIMER_EXECUTED: u16 = 1;

/// A statement executing, and who asked.
#[derive(Debug)]
struct Executing {
    from: NodeId,
    request: DatabaseRequest,
}

/// The database node of one consumer group.
pub struct Database {
    group: u32,
    kind: SinkKind,
    latency: Duration,
    /// Values stored (every sink kind keeps them; only dedupe and offsets-in-sink refuse).
    stored: BTreeSet<ValueId>,
    /// Next offset stored per partition (offsets-in-sink).
    offsets: BTreeMap<TopicPartition, u64>,
    executing: BTreeMap<u64, Executing>,
    next_seq: u64,
    rows: u64,
    refused: u64,
}

impl Database {
    pub fn new(group: u32, kind: SinkKind, latency: Duration) -> Database {
        Database {
            group,
            kind,
            latency,
            stored: BTreeSet::new(),
            offsets: BTreeMap::new(),
            executing: BTreeMap::new(),
            next_seq: 0,
            rows: 0,
            refused: 0,
        }
    }

    /// Rows committed (including rows recovered after a restart).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes refused by this incarnation (already stored).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Statements executing now.
    pub fn executing(&self) -> usize {
        self.executing.len()
    }

    fn note(&mut self, row: &Row) {
        self.rows += 1;
        self.stored.insert(row.value);
        if self.kind == SinkKind::OffsetsInSink {
            let next = self.offsets.entry(row.partition).or_insert(0);
            *next = (*next).max(row.offset + 1);
        }
    }

    /// Whether the constraint of this sink refuses `row`.
    fn refuses(&self, row: &Row) -> bool {
        match self.kind {
            SinkKind::Plain => false,
            SinkKind::Dedupe => self.stored.contains(&row.value),
            SinkKind::OffsetsInSink => self
                .offsets
                .get(&row.partition)
                .is_some_and(|next| *next > row.offset),
        }
    }

    fn execute(&mut self, cx: &mut Cx, statement: &Statement) -> StatementResult {
        match statement {
            Statement::Insert(row) => {
                assert_eq!(
                    row.group,
                    self.group,
                    "{}: a member of group {} wrote to this database",
                    cx.me(),
                    row.group
                );
                if self.refuses(row) {
                    self.refused += 1;
                    cx.record(HistoryEvent::SinkRefused {
                        group: row.group,
                        member: row.member,
                        partition: row.partition,
                        offset: row.offset,
                        value: row.value,
                    });
                    return StatementResult::Refused;
                }
                self.note(row);
                let entry = DiskEntry::new(DiskData::Blob(Arc::new(*row)), ROW_BYTES);
                cx.disk().append(TABLE_FILE, entry);
                cx.record(row.sink_write());
                StatementResult::Committed
            }
            Statement::ReadOffsets(tps) => StatementResult::Offsets(
                tps.iter()
                    .map(|tp| (*tp, self.offsets.get(tp).copied()))
                    .collect(),
            ),
        }
    }
}

impl Node for Database {
    /// Recover every committed row from the table file.
    fn on_start(&mut self, cx: &mut Cx) {
        let entries = cx.disk().read(TABLE_FILE).to_vec();
        for entry in &entries {
            let DiskData::Blob(blob) = &entry.data else {
                panic!("{}: the table file holds a non-row entry", cx.me());
            };
            let row = blob
                .downcast_ref::<Row>()
                .unwrap_or_else(|| panic!("{}: the table file holds a foreign blob", cx.me()));
            self.note(row);
        }
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            Message::DatabaseRequest(request) => {
                assert!(
                    self.executing.len() < MAX_EXECUTING,
                    "{}: more than {MAX_EXECUTING} statements executing",
                    cx.me()
                );
                let seq = self.next_seq;
                self.next_seq += 1;
                self.executing.insert(seq, Executing { from, request });
                cx.set_timer_after(self.latency, Timer::new(TIMER_EXECUTED, seq));
            }
            Message::ConnectionReset | Message::ConnectionRefused => {
                // The member's process died: its statements still execute (a server does
                // not notice a dead client before it writes the answer).
            }
            other => panic!("{}: a database got {}", cx.me(), other.kind()),
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        assert_eq!(timer.kind, TIMER_EXECUTED, "{}: unknown timer", cx.me());
        let Some(done) = self.executing.remove(&timer.key) else {
            panic!("{}: statement {} is not executing", cx.me(), timer.key);
        };
        let result = self.execute(cx, &done.request.statement);
        let answer = Message::DatabaseResponse(DatabaseResponse {
            correlation_id: done.request.correlation_id,
            result,
        });
        cx.send(done.from, answer);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{World, WorldConfig};
    use kafsim_engine::{Instant, TopicId};
    use std::cell::RefCell;
    use std::rc::Rc;

    type Answers = Rc<RefCell<Vec<(Instant, StatementResult)>>>;

    /// Sends its statements one at a time, each after the previous one's answer.
    struct Client {
        db: NodeId,
        script: Vec<Statement>,
        next: usize,
        answers: Answers,
    }

    impl Client {
        fn send_next(&mut self, cx: &mut Cx) {
            if let Some(statement) = self.script.get(self.next).cloned() {
                let msg = Message::DatabaseRequest(DatabaseRequest {
                    correlation_id: self.next as u64,
                    statement,
                });
                cx.send(self.db, msg);
            }
        }
    }

    impl Node for Client {
        fn on_start(&mut self, cx: &mut Cx) {
            self.send_next(cx);
        }
        fn on_message(&mut self, cx: &mut Cx, _from: NodeId, msg: Message) {
            if let Message::DatabaseResponse(r) = msg {
                self.answers.borrow_mut().push((cx.now(), r.result));
                self.next += 1;
                self.send_next(cx);
            }
        }
        fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

    fn insert(offset: u64, value: u64) -> Statement {
        Statement::Insert(Row {
            group: 0,
            member: 0,
            partition: TP,
            offset,
            value: ValueId(value),
            key: None,
        })
    }

    /// A database of `kind` and a client running `script`; returns the world, the answers
    /// and the database's id.
    fn world(kind: SinkKind, script: Vec<Statement>) -> (World, Answers, NodeId) {
        let mut w = World::new(1, WorldConfig::default());
        let db = w.add_node("database:g", move || {
            Box::new(Database::new(0, kind, DEFAULT_LATENCY)) as Box<dyn Node>
        });
        let answers: Answers = Rc::default();
        let a = answers.clone();
        w.add_node("client", move || {
            Box::new(Client {
                db,
                script: script.clone(),
                next: 0,
                answers: a.clone(),
            }) as Box<dyn Node>
        });
        (w, answers, db)
    }

    fn results(answers: &Answers) -> Vec<StatementResult> {
        answers.borrow().iter().map(|(_, r)| r.clone()).collect()
    }

    fn count(w: &World, pred: impl Fn(&HistoryEvent) -> bool) -> usize {
        w.history()
            .entries()
            .iter()
            .filter(|e| pred(&e.event))
            .count()
    }

    #[test]
    fn dedupe_refuses_a_stored_value_plain_stores_it_twice() {
        let script = vec![insert(0, 7), insert(1, 7)];
        let (mut w, answers, db) = world(SinkKind::Dedupe, script.clone());
        w.run_until(Instant::from_millis(100));
        use StatementResult::*;
        assert_eq!(results(&answers), vec![Committed, Refused]);
        assert_eq!(
            count(&w, |e| matches!(e, HistoryEvent::SinkWrite { .. })),
            1
        );
        assert_eq!(
            count(&w, |e| matches!(e, HistoryEvent::SinkRefused { .. })),
            1
        );
        assert_eq!(w.node::<Database>(db).unwrap().refused(), 1);
        let (mut w, answers, _) = world(SinkKind::Plain, script);
        w.run_until(Instant::from_millis(100));
        assert_eq!(results(&answers), vec![Committed, Committed]);
        assert_eq!(
            count(&w, |e| matches!(e, HistoryEvent::SinkWrite { .. })),
            2
        );
    }

    #[test]
    fn a_statement_takes_the_database_latency() {
        let (mut w, answers, _) = world(SinkKind::Plain, vec![insert(0, 1)]);
        w.run_until(Instant::from_millis(100));
        let at = answers.borrow()[0].0;
        assert!(at >= Instant::ZERO + DEFAULT_LATENCY, "{at}");
        assert!(at < Instant::from_millis(5), "{at}");
    }

    #[test]
    fn offsets_in_sink_stores_the_next_offset_and_refuses_what_it_passed() {
        let script = vec![
            insert(5, 1),
            Statement::ReadOffsets(vec![TP, TopicPartition::new(TopicId(0), 1)]),
            insert(3, 2), // behind the stored offset: a replay, refused
            insert(6, 3),
            Statement::ReadOffsets(vec![TP]),
        ];
        let (mut w, answers, _) = world(SinkKind::OffsetsInSink, script);
        w.run_until(Instant::from_millis(100));
        use StatementResult::*;
        assert_eq!(
            results(&answers),
            vec![
                Committed,
                Offsets(vec![
                    (TP, Some(6)),
                    (TopicPartition::new(TopicId(0), 1), None)
                ]),
                Refused,
                Committed,
                Offsets(vec![(TP, Some(7))]),
            ]
        );
    }

    #[test]
    fn a_crash_loses_no_committed_row() {
        // Rows committed before the crash are recovered: the restarted database still
        // refuses them and still knows the stored offset.
        let (mut w, answers, db) = world(SinkKind::OffsetsInSink, vec![insert(0, 1)]);
        w.run_until(Instant::from_millis(100));
        assert_eq!(results(&answers), vec![StatementResult::Committed]);
        w.crash(db);
        w.restart(db);
        w.run_until(Instant::from_millis(200));
        let d = w.node::<Database>(db).unwrap();
        assert_eq!(d.rows(), 1);
        assert_eq!(d.offsets.get(&TP), Some(&1));
        assert!(d.refuses(&Row {
            group: 0,
            member: 1,
            partition: TP,
            offset: 0,
            value: ValueId(1),
            key: None
        }));
        // ... and a crash of a database that never committed a row recovers nothing.
        let (mut w, _, db) = world(SinkKind::Dedupe, vec![]);
        w.run_until(Instant::from_millis(10));
        w.crash(db);
        w.restart(db);
        w.run_until(Instant::from_millis(20));
        assert_eq!(w.node::<Database>(db).unwrap().rows(), 0);
    }
}
