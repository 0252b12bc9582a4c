//! What the world does for TCP connections ([`crate::connection`]): holding what waits
//! behind a partition and retransmitting it, ending connections, and the kernel's notices
//! (a reset when a connection ends, a refusal when a message reaches a process that is down).

use super::*;

impl World {
    /// Queue a message of connection `epoch` that reached a blocked link until TCP
    /// retransmits it after the heal.
    pub(super) fn hold(&mut self, from: NodeId, to: NodeId, epoch: u64, event: Event) {
        if let Some((delay, generation)) = self.connections.hold(from, to, epoch, event) {
            self.schedule_retransmit(from, to, epoch, generation, delay);
        }
    }

    /// TCP's next retransmission of what connection `epoch` of `from -> to` holds.
    fn schedule_retransmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        epoch: u64,
        generation: u64,
        delay: Duration,
    ) {
        let kind = EventKind::Retransmit {
            from,
            epoch,
            generation,
        };
        self.schedule(self.now + delay, to, 0, kind);
    }

    /// A retransmission of what connection `epoch` holds behind a partition of `from -> to`
    /// is due.
    pub(super) fn retransmit(&mut self, from: NodeId, to: NodeId, epoch: u64, generation: u64) {
        let blocked = self.network.is_blocked(from, to);
        // A connection `from` closed since: the orphaned socket gives up its data in the
        // end, and only the close notice behind it is left.
        let orphan = self.network.is_orphan(from, to, epoch);
        let keep = |e: &Event| {
            matches!(
                e.kind,
                EventKind::Deliver {
                    stage: Stage::Notice,
                    ..
                }
            )
        };
        match self
            .connections
            .retransmit(from, to, epoch, generation, blocked, orphan, keep)
        {
            Retransmit::Stale => {}
            Retransmit::Again(delay) => {
                self.schedule_retransmit(from, to, epoch, generation, delay)
            }
            Retransmit::Release(events) => {
                self.hasher.word(self.now.as_nanos());
                self.hasher.str("retransmit");
                self.hasher.word(((from.0 as u64) << 32) | to.0 as u64);
                let count = events.len();
                self.trace(to, || TraceKind::Retransmit { from, count });
                if orphan {
                    self.note_late(from, to, epoch, &events);
                }
                for mut event in events {
                    if let EventKind::Deliver { bytes, stage, .. } = &mut event.kind {
                        if *stage == Stage::OnWire {
                            self.network.settle(from, to, *bytes, true);
                            *stage = Stage::Arrived;
                        }
                    }
                    event.at = self.now;
                    self.dispatch(event);
                }
            }
        }
    }

    /// Note the transactional requests of `events`, released from connection `epoch` that
    /// `from` closed: they reach `to` after their client gave them up ([`crate::late`]).
    fn note_late(&mut self, from: NodeId, to: NodeId, epoch: u64, events: &VecDeque<Event>) {
        let closed_at = self.closed_at.get(&(from, to, epoch)).copied();
        for event in events {
            if self.late_requests.len() >= crate::late::MAX_LATE_REQUESTS {
                return;
            }
            let EventKind::Deliver { msg, .. } = &event.kind else {
                continue;
            };
            if let Some(request) = crate::late::LateKind::of(msg) {
                self.late_requests.push(crate::late::LateRequest {
                    at: self.now,
                    from,
                    to,
                    written_at: event.at,
                    closed_at,
                    request,
                });
            }
        }
    }

    /// The connection between `a` and `b` ends: what is in flight or held either way is
    /// lost, requests read on it can no longer be answered, a muted socket is forgotten.
    pub(super) fn end_connection(&mut self, a: NodeId, b: NodeId) {
        self.network.cut(a, b);
        let dropped = self.connections.end(a, b);
        self.network.stats.dropped += dropped as u64;
        self.sockets.forget_pair(a, b);
        set_peer(&mut self.slots[a.0 as usize].peers, b, false);
        set_peer(&mut self.slots[b.0 as usize].peers, a, false);
    }

    /// The operating system of `from` tells `to` that their connection is gone (a FIN or a
    /// reset), arriving at `at`; behind a partition it waits for a retransmission like data.
    pub(super) fn notify_reset(&mut self, from: NodeId, to: NodeId, at: Instant) {
        self.notify(from, to, at, Message::ConnectionReset);
    }

    /// Deliver a kernel notice (`ConnectionReset` / `ConnectionRefused`) from `from`'s host to
    /// `to` at `at`, or behind a partition, at the first retransmission that gets through.
    pub(super) fn notify(&mut self, from: NodeId, to: NodeId, at: Instant, notice: Message) {
        let epoch = self.network.epoch(from, to);
        self.notify_on(from, to, at, notice, epoch);
    }

    /// [`World::notify_reset`] for the connection of `epoch`: the FIN queues behind what that
    /// connection holds (it follows the data written before it).
    pub(super) fn notify_close(&mut self, from: NodeId, to: NodeId, at: Instant, epoch: u64) {
        self.notify_on(from, to, at, Message::ConnectionReset, epoch);
    }

    /// [`World::notify`] behind what connection `epoch` of `from -> to` holds.
    fn notify_on(&mut self, from: NodeId, to: NodeId, at: Instant, notice: Message, epoch: u64) {
        if self.slot(to).state == NodeState::Down {
            return;
        }
        let kind = EventKind::Deliver {
            from,
            msg: Box::new(notice),
            bytes: 0,
            link_epoch: 0,
            stage: Stage::Notice,
        };
        if self.network.is_blocked(from, to) || self.connections.is_holding(from, to, epoch) {
            self.seq += 1;
            let event = Event {
                at: self.now,
                seq: self.seq,
                node: to,
                incarnation: 0,
                kind,
            };
            self.hold(from, to, epoch, event);
        } else {
            self.schedule(at, to, 0, kind);
        }
    }

    /// A message from `from` reached the host of crashed process `id`: its TCP stack refuses
    /// the connection (ECONNREFUSED). Every connection of a process ends when it goes down, so
    /// a message that reaches it down travelled on a connection opened since: the refusal says
    /// that nothing sent on it was read, which a client may rely on (Java's `NetworkClient`
    /// never sent the requests of a connection that did not get established).
    pub(super) fn refuse(&mut self, id: NodeId, from: NodeId) {
        self.end_connection(id, from);
        let at = self.now + self.network.config().latency;
        self.notify(id, from, at, Message::ConnectionRefused);
    }
}
