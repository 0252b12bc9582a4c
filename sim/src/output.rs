//! The final read of a consume-transform-produce group's output topic (handler
//! `produce_to`): what a `read_committed` reader of the whole topic gets at the end of the
//! run, recorded as `OutputRecord` facts for the sink checkers (as Jepsen's Kafka workload
//! ends with final reads of every partition).
//!
//! Each partition is read from its current leader (or, without one, from the replica with
//! the highest high watermark) below the high watermark: data batches of no transaction are
//! committed; a transactional batch counts once its producer's commit marker follows it, and
//! not if an abort marker does or if no marker does by the end (the transaction is still
//! open; the drain waits for the output's open transactions, so only a stalled run has any).

use crate::cluster::Cluster;
use crate::history::{History, HistoryEntry};
use crate::world::World;
use kafsim_engine::broker::Broker;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::record::{ControlMarker, RecordBatch};
use kafsim_engine::{NodeId, TopicPartition};
use std::collections::BTreeMap;

/// Append one `OutputRecord` of `group` for every committed record of `partitions`.
pub fn final_read(
    w: &World,
    cluster: &Cluster,
    group: u32,
    partitions: &[TopicPartition],
    history: &mut History,
) {
    for &tp in partitions {
        let Some((node, batches)) = read_partition(w, cluster, tp) else {
            continue;
        };
        for (offset, value) in committed_records(&batches) {
            history.push(HistoryEntry {
                at: w.now(),
                node,
                event: HistoryEvent::OutputRecord {
                    group,
                    partition: tp,
                    offset,
                    value,
                },
            });
        }
    }
}

/// The batches of `tp` below the high watermark of the replica read, and its broker.
fn read_partition(
    w: &World,
    cluster: &Cluster,
    tp: TopicPartition,
) -> Option<(NodeId, Vec<RecordBatch>)> {
    let replica = |node: NodeId| {
        let p = w.node::<Broker>(node)?.partition(tp)?;
        Some((node, p.high_watermark, p))
    };
    let chosen = cluster.leader_of(w, tp).and_then(replica).or_else(|| {
        cluster
            .brokers
            .iter()
            .filter_map(|b| replica(*b))
            .max_by_key(|(node, hw, _)| (*hw, std::cmp::Reverse(*node)))
    })?;
    let (node, hw, p) = chosen;
    Some((node, p.log.read(0, u32::MAX, hw)))
}

/// (offset, value) of every committed data record of `batches` (in log order).
pub fn committed_records(batches: &[RecordBatch]) -> Vec<(u64, kafsim_engine::ValueId)> {
    let mut out = Vec::new();
    let mut open: BTreeMap<i64, Vec<(u64, kafsim_engine::ValueId)>> = BTreeMap::new();
    for batch in batches {
        if let Some(marker) = batch.control {
            if let Some(records) = open.remove(&batch.producer_id) {
                if marker == ControlMarker::Commit {
                    out.extend(records);
                }
            }
            continue;
        }
        let records = batch
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (batch.base_offset + i as u64, r.value));
        if batch.is_transactional {
            open.entry(batch.producer_id).or_default().extend(records);
        } else {
            out.extend(records);
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafsim_engine::record::Record;
    use kafsim_engine::{Instant, ValueId};

    fn data(base: u64, pid: i64, txn: bool, values: &[u64]) -> RecordBatch {
        let records: Vec<Record> = values
            .iter()
            .map(|v| Record {
                value: ValueId(*v),
                key: None,
                size: 10,
                create_time: Instant::ZERO,
                payload: None,
            })
            .collect();
        let mut b = RecordBatch::new(records.into());
        b.base_offset = base;
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.is_transactional = txn;
        b
    }

    fn marker(base: u64, pid: i64, m: ControlMarker) -> RecordBatch {
        let mut b = RecordBatch::control_marker(pid, 0, m);
        b.base_offset = base;
        b
    }

    #[test]
    fn committed_transactions_and_plain_batches_count_aborted_and_open_ones_do_not() {
        let batches = vec![
            data(0, 1, true, &[10, 11]),
            data(2, 2, true, &[20]),
            data(3, -1, false, &[30]),
            marker(4, 1, ControlMarker::Commit),
            marker(5, 2, ControlMarker::Abort),
            data(6, 2, true, &[21]),
            data(7, 1, true, &[12]),
            marker(8, 2, ControlMarker::Commit),
        ];
        let got: Vec<u64> = committed_records(&batches)
            .iter()
            .map(|(_, v)| v.0)
            .collect();
        // 20 aborted; 12 open at the end.
        assert_eq!(got, vec![10, 11, 30, 21]);
        let offsets: Vec<u64> = committed_records(&batches)
            .iter()
            .map(|(o, _)| *o)
            .collect();
        assert_eq!(offsets, vec![0, 1, 3, 6]);
    }
}
