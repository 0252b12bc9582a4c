//! Faults the world applies to nodes: crash, power loss, restart, pause and resume, closing a
//! connection, and CPU and disk slowdowns. The nemesis and scripts decide when; this is what
//! each does to the node's state machine, its connections and its disk.

use super::*;

impl World {
    pub(super) fn fault_trace(&mut self, id: NodeId, what: &'static str) {
        self.hasher.word(self.now.as_nanos());
        self.hasher.str(what);
        self.hasher.word(id.0 as u64);
        self.trace(id, || TraceKind::Fault(what));
    }

    /// Drop the node's state machine and forget its timers; its connections end, so what is
    /// in flight to and from it is lost. With `notify`, peers get a connection reset (a
    /// process crash: the OS closes its sockets); without, they only time out (power loss).
    pub(super) fn take_down(&mut self, id: NodeId, notify: bool) {
        let now = self.now;
        let peers: Vec<NodeId> = {
            let slot = self.slot_mut(id);
            slot.node = None;
            slot.state = NodeState::Down;
            slot.powered_off = !notify;
            slot.incarnation += 1;
            slot.cancelled.clear();
            slot.held.clear();
            slot.cpu_queue.clear();
            slot.cpu_wake = false;
            slot.cores_free_at.iter_mut().for_each(|t| *t = now);
            let peers = std::mem::take(&mut slot.peers);
            self.sockets.forget_node(id);
            self.connections.forget_server(id);
            peers
                .iter()
                .enumerate()
                .filter(|(_, on)| **on)
                .map(|(i, _)| NodeId(i as u32))
                .collect()
        };
        if !notify {
            // A powered-off host says nothing now; its peers find out when it is back (below).
            let slot = self.slot_mut(id);
            for &peer in &peers {
                set_peer(&mut slot.orphaned_peers, peer, true);
            }
        }
        // Every connection of the process ends, also those it had not used yet.
        for other in 0..self.slots.len() as u32 {
            let other = NodeId(other);
            if other != id {
                self.end_connection(id, other);
            }
        }
        if notify {
            let at = self.now + self.network.config().latency;
            for peer in peers {
                self.notify_reset(id, peer, at);
            }
        }
    }

    /// Process crash: the state machine is gone, the page cache (and so every write) stays.
    pub fn crash(&mut self, id: NodeId) {
        if self.slot(id).state == NodeState::Down {
            return;
        }
        self.fault_trace(id, "crash");
        self.take_down(id, true);
    }

    /// Power loss: like a crash, but unflushed writes are lost (the last one maybe torn) and
    /// peers get no reset notice.
    pub fn power_loss(&mut self, id: NodeId, tear: bool) {
        self.fault_trace(id, "power-loss");
        if self.slot(id).state != NodeState::Down {
            self.take_down(id, false);
        }
        self.slot_mut(id).powered_off = true;
        let now = self.now;
        let slot = &mut self.slots[id.0 as usize];
        slot.disk.now = now;
        slot.disk.power_loss(tear, &mut self.disk_rng);
    }

    /// Start a fresh state machine for a down node (no effect on a node that is up).
    pub fn restart(&mut self, id: NodeId) {
        if self.slot(id).state != NodeState::Down {
            return;
        }
        self.fault_trace(id, "restart");
        self.reset_orphaned_peers(id);
        let slot = self.slot_mut(id);
        slot.node = Some((slot.factory)());
        slot.state = NodeState::Up;
        slot.powered_off = false;
        let incarnation = slot.incarnation;
        self.schedule(self.now, id, incarnation, EventKind::Start);
    }

    /// A host that lost power and comes back answers its old peers' next TCP retransmission
    /// with a reset: they learn their connection is gone one retransmission timeout after the
    /// restart (instead of waiting out their own request timeouts).
    pub(super) fn reset_orphaned_peers(&mut self, id: NodeId) {
        let orphaned = std::mem::take(&mut self.slot_mut(id).orphaned_peers);
        let at = self.now + self.network.config().latency + TCP_RTO_MIN;
        for (i, on) in orphaned.iter().enumerate() {
            if *on {
                self.notify_reset(id, NodeId(i as u32), at);
            }
        }
    }

    /// Fire `timer` on node `id` now, as if the node had set it: how the host hands an
    /// operator's command to the admin client node (the engine stays unaware of the host).
    pub fn signal(&mut self, id: NodeId, timer: Timer) {
        self.next_timer_id += 1;
        let timer_id = TimerId(self.next_timer_id);
        let incarnation = self.slot(id).incarnation;
        self.schedule(
            self.now,
            id,
            incarnation,
            EventKind::Timer {
                id: timer_id,
                timer,
            },
        );
    }

    /// Freeze a node: it receives nothing and fires no timers until resumed.
    pub fn pause(&mut self, id: NodeId) {
        if self.slot(id).state != NodeState::Up {
            return;
        }
        self.fault_trace(id, "pause");
        self.slot_mut(id).state = NodeState::Paused;
    }

    /// Unfreeze a paused node: what it missed is handed over now, in arrival order.
    pub fn resume(&mut self, id: NodeId) {
        if self.slot(id).state != NodeState::Paused {
            return;
        }
        self.fault_trace(id, "resume");
        let slot = self.slot_mut(id);
        slot.state = NodeState::Up;
        let held = std::mem::take(&mut slot.held);
        for mut event in held {
            event.at = self.now;
            self.seq += 1;
            event.seq = self.seq;
            self.queue.push(Reverse(event));
        }
    }

    /// Cut the TCP connection between `a` and `b` (a middlebox resets it): in-flight
    /// messages are lost and both ends get a reset notice.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.fault_trace(a, "cut");
        self.end_connection(a, b);
        let at = self.now + self.network.config().latency;
        self.notify_reset(a, b, at);
        self.notify_reset(b, a, at);
    }

    /// Node `by` closed its connection to `peer` ([`Cx::close_connection`]) gracefully: what
    /// it wrote on an established connection still reaches `peer` and is handled there, what
    /// `peer` sends back is lost (`Network::close`); `peer` learns of the close when the FIN
    /// reaches it. What a connection that never got through carried is lost.
    pub(super) fn close_connection(&mut self, by: NodeId, peer: NodeId) {
        self.hasher.word(self.now.as_nanos());
        self.hasher.str("close");
        self.hasher.word(((by.0 as u64) << 32) | peer.0 as u64);
        self.trace(by, || TraceKind::CloseConnection { peer });
        let old = self.network.epoch(by, peer);
        let orphaned = self.network.close(by, peer);
        if orphaned && self.closed_at.len() < MAX_CLOSED_REMEMBERED {
            self.closed_at.insert((by, peer, old), self.now);
        }
        // What travels towards `by` is lost (its socket is gone); so is what it sent on a
        // connection that never got through. Earlier closed connections keep their data.
        let mut dropped = self.connections.end_towards(by, peer);
        if !orphaned {
            dropped += self.connections.end_one(by, peer, old);
        }
        self.network.stats.dropped += dropped as u64;
        // `by`'s own server side of the pair is gone; `peer` still reads what `by` wrote.
        self.sockets.forget(by, peer);
        set_peer(&mut self.slots[by.0 as usize].peers, peer, false);
        set_peer(&mut self.slots[peer.0 as usize].peers, by, false);
        let at = self.send_at + self.network.config().latency;
        self.notify_close(by, peer, at, old);
    }

    /// Notes that the node's application processes `factor` times slower (a
    /// `consumer-slowdown`), on top of those in force: the slowest in force applies, and
    /// each ends on its own ([`World::end_slowdown`]). The world stretches nothing itself:
    /// the runner signals the consumer [`World::slowdown`], whose handler stretches its
    /// processing time and nothing else (a slow handler does not slow the client's heartbeat
    /// thread or its timeouts).
    pub fn add_slowdown(&mut self, id: NodeId, factor: f64) {
        assert!(
            factor > 0.0 && factor.is_finite(),
            "slowdown factor must be positive"
        );
        self.fault_trace(id, "slowdown");
        self.slot_mut(id).slowdowns.push(factor);
    }

    /// The end of one [`World::add_slowdown`] of `factor`: the others in force stay.
    pub fn end_slowdown(&mut self, id: NodeId, factor: f64) {
        self.fault_trace(id, "slowdown");
        let slot = self.slot_mut(id);
        let i = (slot.slowdowns.iter())
            .position(|f| *f == factor)
            .unwrap_or_else(|| panic!("end of a slowdown x{factor} of {id} not in force"));
        slot.slowdowns.remove(i);
    }

    /// Every slowdown of the node ends (the heal).
    pub fn clear_slowdowns(&mut self, id: NodeId) {
        self.fault_trace(id, "slowdown");
        self.slot_mut(id).slowdowns.clear();
    }

    /// The node's `consumer-slowdown` factor: the slowest in force (1.0: none).
    pub fn slowdown(&self, id: NodeId) -> f64 {
        slowest(&self.slot(id).slowdowns)
    }

    /// Multiply the node's fsync time (and divide its disk bandwidth) by `factor` (slow-disk
    /// fault), on top of those in force: the slowest in force applies, and each ends on its
    /// own ([`World::end_disk_slowdown`]).
    pub fn add_disk_slowdown(&mut self, id: NodeId, factor: f64) {
        assert!(
            factor > 0.0 && factor.is_finite(),
            "slow-disk factor must be positive"
        );
        self.fault_trace(id, "slow-disk");
        let slot = self.slot_mut(id);
        slot.disk_slowdowns.push(factor);
        slot.disk.slowdown = slowest(&slot.disk_slowdowns);
    }

    /// The end of one [`World::add_disk_slowdown`] of `factor`: the others in force stay.
    pub fn end_disk_slowdown(&mut self, id: NodeId, factor: f64) {
        self.fault_trace(id, "slow-disk");
        let slot = self.slot_mut(id);
        let i = (slot.disk_slowdowns.iter())
            .position(|f| *f == factor)
            .unwrap_or_else(|| panic!("end of a slow disk x{factor} of {id} not in force"));
        slot.disk_slowdowns.remove(i);
        slot.disk.slowdown = slowest(&slot.disk_slowdowns);
    }

    /// Every slow disk of the node ends (the heal).
    pub fn clear_disk_slowdowns(&mut self, id: NodeId) {
        self.fault_trace(id, "slow-disk");
        let slot = self.slot_mut(id);
        slot.disk_slowdowns.clear();
        slot.disk.slowdown = 1.0;
    }
}

/// The factor of the slowest of several slowdowns in force of one node (1.0: none). Two slow
/// dependencies, or two faults slowing one disk, do not compound: the node is as slow as the
/// worst of them, and when that one ends the next worst applies.
fn slowest(factors: &[f64]) -> f64 {
    factors.iter().copied().reduce(f64::max).unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use crate::world::{World, WorldConfig};
    use kafsim_engine::protocol::Message;
    use kafsim_engine::{Cx, Node, NodeId, Timer};

    struct Idle;
    impl Node for Idle {
        fn on_start(&mut self, _cx: &mut Cx) {}
        fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, _msg: Message) {}
        fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    /// Overlapping slowdowns of one node each end on their own: the slowest in force
    /// applies, and the end of one leaves the others (ending the first used to set the
    /// node back to normal speed while the second was still in force).
    #[test]
    fn overlapping_slowdowns_each_end_on_their_own() {
        let mut w = World::new(1, WorldConfig::default());
        let n = w.add_node("broker-0", || Box::new(Idle));
        w.add_disk_slowdown(n, 10.0);
        w.add_disk_slowdown(n, 40.0);
        assert_eq!(w.disk(n).slowdown, 40.0);
        w.end_disk_slowdown(n, 40.0);
        assert_eq!(w.disk(n).slowdown, 10.0, "the first is still in force");
        w.add_disk_slowdown(n, 5.0);
        w.end_disk_slowdown(n, 10.0);
        assert_eq!(w.disk(n).slowdown, 5.0);
        w.end_disk_slowdown(n, 5.0);
        assert_eq!(w.disk(n).slowdown, 1.0);

        w.add_slowdown(n, 3.0);
        w.add_slowdown(n, 30.0);
        w.end_slowdown(n, 3.0);
        assert_eq!(w.slowdown(n), 30.0, "the second is still in force");
        w.end_slowdown(n, 30.0);
        assert_eq!(w.slowdown(n), 1.0);
        w.add_slowdown(n, 7.0);
        w.add_disk_slowdown(n, 7.0);
        w.clear_slowdowns(n);
        w.clear_disk_slowdowns(n);
        assert_eq!((w.slowdown(n), w.disk(n).slowdown), (1.0, 1.0));
    }
}
