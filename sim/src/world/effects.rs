//! What a handler's effects do once its CPU time is over: messages go onto the network
//! (or are refused, held or muted on the way), timers and fsyncs are scheduled, connections
//! close, history records are kept.

use super::*;

impl World {
    pub(super) fn apply(&mut self, id: NodeId, effect: Effect) {
        match effect {
            Effect::Send { to, mut msg } => {
                assert!(
                    (to.0 as usize) < self.slots.len(),
                    "{id} sent {} to unknown node {to}",
                    msg.kind()
                );
                // The id under which the server read the request this answers (traced, so a
                // trace reader can pair the two).
                let mut answers: Option<u64> = None;
                let epoch = self.network.epoch(id, to);
                // The connection of the request this answers (its socket's mute ends).
                let mut request_epoch = epoch;
                if let Exchange::Response { correlation_id } = msg.exchange() {
                    // A response is written to the socket its request was read from.
                    request_epoch = self
                        .connections
                        .request_epoch(correlation_id)
                        .unwrap_or(epoch);
                    match self.connections.answer(id, to, correlation_id, epoch) {
                        Some(client_id) => {
                            answers = Some(correlation_id);
                            *msg.correlation_id_mut().expect("a response has one") = client_id;
                        }
                        None => {
                            self.connections.responses_lost += 1;
                            self.trace(id, || {
                                TraceKind::ResponseLost(MessageInfo::of(&msg, to, 0))
                            });
                            if socket::unmutes(&msg) {
                                // A client that closed gracefully left requests to read.
                                self.read_next_request(id, to, request_epoch);
                            }
                            return;
                        }
                    }
                }
                if socket::unmutes(&msg) {
                    self.read_next_request(id, to, request_epoch);
                }
                let bytes = self.config.cost.wire_bytes(&msg);
                if let Some(wire_id) = answers {
                    self.trace(id, || {
                        TraceKind::Respond(MessageInfo {
                            correlation_id: Some(wire_id),
                            ..MessageInfo::of(&msg, to, bytes)
                        })
                    });
                }
                if let SendOutcome::Arrives { at, link_epoch } =
                    self.network.send(self.send_at, id, to, bytes)
                {
                    self.schedule(
                        at,
                        to,
                        0,
                        EventKind::Deliver {
                            from: id,
                            msg: Box::new(msg),
                            bytes,
                            link_epoch,
                            stage: Stage::OnWire,
                        },
                    );
                }
            }
            Effect::SetTimer {
                id: timer_id,
                at,
                timer,
            } => {
                let incarnation = self.slots[id.0 as usize].incarnation;
                self.schedule(
                    at,
                    id,
                    incarnation,
                    EventKind::Timer {
                        id: timer_id,
                        timer,
                    },
                );
            }
            Effect::CancelTimer { id: timer_id } => {
                self.slots[id.0 as usize].cancelled.insert(timer_id);
            }
            Effect::Fsync { file, token } => {
                let slot = &mut self.slots[id.0 as usize];
                let (at, ticket) = slot.disk.begin_fsync(file);
                let incarnation = slot.incarnation;
                self.schedule(at, id, incarnation, EventKind::Fsync { ticket, token });
            }
            Effect::CloseConnection { peer } => self.close_connection(id, peer),
            Effect::Record(event) => {
                super::hash::hash_history(&mut self.hasher, &event);
                self.trace(id, || TraceKind::Record(event.clone()));
                self.history.push(HistoryEntry {
                    at: self.now,
                    node: id,
                    event,
                });
            }
        }
    }
}
