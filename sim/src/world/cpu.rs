//! The CPU part of the cost model (`crate::cost`): cores, garbage-collection pauses, the
//! queue of events that wait for a core, and when a handler's effects leave the node. Without a
//! CPU model handlers take no time and nothing here changes the timing.

use super::*;

impl World {
    /// CPU time of `work` on node `id` (zero without a CPU model or for a free node).
    pub(super) fn cpu_cost(&self, id: NodeId, work: &Work<'_>) -> Duration {
        let slot = &self.slots[id.0 as usize];
        match &self.config.cost.cpu {
            Some(cpu) if !slot.cores_free_at.is_empty() => cpu.0.cost(slot.class, work),
            _ => Duration::ZERO,
        }
    }

    /// The earliest time, not before now, at which node `id` can start a handler: a core is
    /// free and the node is not in a garbage-collection pause.
    pub(super) fn cpu_start(&self, id: NodeId) -> Instant {
        let slot = &self.slots[id.0 as usize];
        let free = slot.cores_free_at.iter().copied().min().unwrap_or(self.now);
        let t = free.max(self.now);
        let Some(gc) = self
            .config
            .cost
            .cpu
            .as_ref()
            .and_then(|c| c.0.gc(slot.class))
        else {
            return t;
        };
        let interval = duration_nanos(gc.interval);
        if interval == 0 {
            return t;
        }
        // Stagger nodes' pauses by a fixed fraction of the interval per node id.
        let phase = interval * ((id.0 as u64 + 1) * 618 % 1000) / 1000;
        let since = t.as_nanos().saturating_sub(phase);
        if t.as_nanos() < phase {
            return t;
        }
        let window_start = t.as_nanos() - since % interval;
        let window_end = window_start + duration_nanos(gc.pause);
        if t.as_nanos() < window_end {
            Instant::from_nanos(window_end)
        } else {
            t
        }
    }

    /// Queue an arrived event until node `id` has a core for it.
    pub(super) fn enqueue_for_cpu(&mut self, id: NodeId, event: Event) {
        let slot = &mut self.slots[id.0 as usize];
        assert!(
            slot.cpu_queue.len() < MAX_CPU_QUEUE,
            "node {} ({id}): {MAX_CPU_QUEUE} events wait for its CPU; the cost model is \
             overloaded beyond recovery",
            slot.name
        );
        slot.cpu_queue.push_back(event);
        if !slot.cpu_wake {
            self.schedule_cpu_wake(id);
        }
    }

    pub(super) fn schedule_cpu_wake(&mut self, id: NodeId) {
        let at = self.cpu_start(id);
        let slot = &mut self.slots[id.0 as usize];
        slot.cpu_wake = true;
        let incarnation = slot.incarnation;
        self.schedule(at, id, incarnation, EventKind::CpuWake);
    }

    /// Handle queued events of node `id` while it has a free core now, in arrival order.
    pub(super) fn drain_cpu_queue(&mut self, id: NodeId) {
        loop {
            let slot = &self.slots[id.0 as usize];
            if slot.cpu_queue.is_empty() || slot.state != NodeState::Up {
                return;
            }
            if self.cpu_start(id) > self.now {
                self.schedule_cpu_wake(id);
                return;
            }
            let event = self.slots[id.0 as usize]
                .cpu_queue
                .pop_front()
                .expect("checked non-empty");
            self.handle(id, event);
        }
    }

    /// Run one handler of node `id` that costs `cost` of CPU before its effects, and apply
    /// its effects.
    pub(super) fn call(
        &mut self,
        id: NodeId,
        cost: Duration,
        f: impl FnOnce(&mut dyn Node, &mut Cx),
    ) {
        let now = self.now;
        let mut effects = std::mem::take(&mut self.effects);
        let appended_before = self.slots[id.0 as usize].disk.appended_bytes;
        {
            let slot = &mut self.slots[id.0 as usize];
            let mut node = slot.node.take().expect("an up node has a state machine");
            slot.disk.now = now;
            let mut cx = Cx::new(
                now,
                id,
                &mut slot.rng,
                &mut slot.disk,
                &mut effects,
                &mut self.next_timer_id,
            )
            .with_sockets(&self.network);
            f(node.as_mut(), &mut cx);
            slot.node = Some(node);
        }
        self.send_at = now;
        if !self.slots[id.0 as usize].cores_free_at.is_empty() {
            self.occupy_core(id, cost, &effects, appended_before);
        }
        for effect in effects.drain(..) {
            self.apply(id, effect);
        }
        self.effects = effects;
    }

    /// Charge node `id` for a handler that ran now: `cost` plus what its effects cost and the
    /// time its page-cache writes blocked. One core is busy until then; the handler's messages
    /// leave then.
    pub(super) fn occupy_core(
        &mut self,
        id: NodeId,
        cost: Duration,
        effects: &[Effect],
        before: u64,
    ) {
        let Some(cpu) = self.config.cost.cpu.clone() else {
            return;
        };
        let now = self.now;
        let slot = &mut self.slots[id.0 as usize];
        let class = slot.class;
        let mut busy = cost;
        for effect in effects {
            busy += match effect {
                Effect::Send { msg, .. } => {
                    let bytes = self.config.cost.wire_bytes(msg);
                    cpu.0.cost(class, &Work::Send(msg, bytes))
                }
                Effect::Record(event) => cpu.0.cost(class, &Work::Record(event)),
                _ => Duration::ZERO,
            };
        }
        let appended = slot.disk.appended_bytes - before;
        busy += slot.disk.write_stall(now, appended);
        let core = (0..slot.cores_free_at.len())
            .min_by_key(|&i| slot.cores_free_at[i])
            .expect("a charged node has cores");
        slot.cores_free_at[core] = now + busy;
        self.send_at = now + busy;
    }

    /// `server` answered `client`: hand it the next request its connection held unread, when
    /// the answer leaves.
    pub(super) fn read_next_request(&mut self, server: NodeId, client: NodeId, epoch: u64) {
        let Some(event) = self.sockets.answered(server, client, epoch) else {
            return;
        };
        let EventKind::Deliver {
            from,
            msg,
            bytes,
            link_epoch,
            ..
        } = event.kind
        else {
            unreachable!("only messages wait in a socket");
        };
        let incarnation = self.slots[server.0 as usize].incarnation;
        self.schedule(
            self.send_at,
            server,
            incarnation,
            EventKind::Deliver {
                from,
                msg,
                bytes,
                link_epoch,
                stage: Stage::SocketRead,
            },
        );
    }
}
