//! Offset lookups answered by a leader: ListOffsets (`ReplicaManager.fetchOffset`) and
//! OffsetsForLeaderEpoch (`ReplicaManager.lastOffsetForLeaderEpoch`, KIP-101/KIP-279).

use super::ReplicaManager;
use crate::node::{Cx, NodeId};
use crate::protocol::*;

impl ReplicaManager {
    /// ListOffsets: earliest = log start; latest = HW, or the LSO for a read_committed
    /// consumer (`UnifiedLog.fetchOffsetByTimestamp` / `ReplicaManager.fetchOffset` with
    /// `isolationLevel`).
    pub fn handle_list_offsets(&mut self, cx: &mut Cx, from: NodeId, req: ListOffsetsRequest) {
        let committed = req.isolation_level == IsolationLevel::ReadCommitted;
        let partitions = req
            .partitions
            .iter()
            .map(
                |(tp, spec)| match self.partitions.get(tp).filter(|p| p.is_leader()) {
                    None => (*tp, ErrorCode::NotLeaderOrFollower, 0),
                    Some(p) => {
                        let o = match spec {
                            OffsetSpec::Earliest => p.log.log_start_offset(),
                            OffsetSpec::Latest if committed => {
                                self.producer_states.get(tp).map_or(p.high_watermark, |ps| {
                                    ps.transactions().last_stable_offset(p.high_watermark)
                                })
                            }
                            OffsetSpec::Latest => p.high_watermark,
                        };
                        assert!(
                            o <= p.high_watermark,
                            "{tp}: ListOffsets answers {o} above the HW {}",
                            p.high_watermark
                        );
                        assert!(
                            o >= p.log.log_start_offset(),
                            "{tp}: ListOffsets answers {o} below the log start"
                        );
                        (*tp, ErrorCode::None, o)
                    }
                },
            )
            .collect();
        cx.send(
            from,
            Message::ListOffsetsResponse(ListOffsetsResponse {
                correlation_id: req.correlation_id,
                partitions,
            }),
        );
    }

    /// OffsetsForLeaderEpoch, answered by a leader from its epoch cache (KIP-101/KIP-279).
    pub fn handle_offsets_for_leader_epoch(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: OffsetsForLeaderEpochRequest,
    ) {
        let partitions = req
            .partitions
            .iter()
            .map(|&(tp, current, asked)| {
                let undefined = EpochEndOffset {
                    epoch: crate::log::epoch_cache::UNDEFINED_EPOCH,
                    end_offset: 0,
                };
                let Some(p) = self.partitions.get(&tp).filter(|p| p.is_leader()) else {
                    return (tp, ErrorCode::NotLeaderOrFollower, undefined);
                };
                let epoch = p.leader_epoch().expect("leader");
                if current < epoch {
                    return (tp, ErrorCode::FencedLeaderEpoch, undefined);
                }
                if current > epoch {
                    return (tp, ErrorCode::UnknownLeaderEpoch, undefined);
                }
                let (e, end) = p.log.end_offset_for_epoch(asked);
                assert!(
                    e == crate::log::epoch_cache::UNDEFINED_EPOCH || e <= asked.min(epoch),
                    "{tp}: asked for epoch {asked}, answered {e} (leading {epoch})"
                );
                (
                    tp,
                    ErrorCode::None,
                    EpochEndOffset {
                        epoch: e,
                        end_offset: end,
                    },
                )
            })
            .collect();
        cx.send(
            from,
            Message::OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse {
                correlation_id: req.correlation_id,
                partitions,
            }),
        );
    }
}
