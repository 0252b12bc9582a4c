//! The cost model (DESIGN §3): what handling an event costs a node in CPU time, what the
//! node's NIC and disk can move per second, and the hardware profiles (`hardware = "..."`)
//! that set all of it from one table of documented constants.
//!
//! Why it exists: `kafsim bench` reports are used to choose `acks`, `batch.size`,
//! `linger.ms`, partitions and replication, so their throughput and latency must come from a
//! model that reproduces what real clusters measured (the Kreps 2014 rows in
//! `benches/KREPS2014.md`), not from the kernel's free defaults.
//!
//! The model, in one place:
//! - **CPU**: each node of a cost class other than [`CostClass::Free`] has `cores`; handling
//!   an event occupies one core for `receive cost + cost of everything the handler did`
//!   (messages it sent, records it handed over or polled: see [`Work`]). An event arriving
//!   while every core is busy waits in a FIFO queue (the kernel, `world/cpu.rs`). The handler's
//!   messages leave when its CPU time is over. A JVM node also stops for garbage collection
//!   ([`GcModel`]): no core runs during a pause.
//! - **NIC**: full duplex; every message occupies its sender's egress and its receiver's
//!   ingress for `bytes / nic_bytes_per_sec`, shared by all links of the node
//!   (`network.rs`).
//! - **Disk**: page-cache writes are free while dirty data is under the freerun point
//!   between Linux's `dirty_background_ratio` (10%) and `dirty_ratio` (20%) of dirtyable
//!   memory; the flusher writes back at the disk's sequential bandwidth once dirty data is over
//!   the background threshold, and writers above the freerun point are paused as
//!   `balance_dirty_pages` does, so sustained writes settle at the disk's bandwidth while a
//!   burst rides the page cache. fsync pays latency plus transfer (`disk.rs`).
//!
//! - **Compression**: producers pay per uncompressed byte to compress, leaders and consumers
//!   to decompress, at published codec speeds (see the codec constants); compressed batches
//!   are smaller on every link and disk (`kafsim_engine::compression`).
//!
//! The default [`CostModel`] costs nothing and limits nothing, so kernel tests and fault
//! campaigns keep their timing; `kafsim bench` uses a [`HardwareProfile`]'s model.

use crate::disk::{DirtyThresholds, DiskConfig};
use crate::network::LinkConfig;
use crate::world::WorldConfig;
use kafsim_engine::compression::{effective_level, interpolate, CompressionType};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Message;
use kafsim_engine::{Duration, RecordBatch};
use std::fmt;
use std::sync::Arc;

/// What a node is, for the cost model: brokers and clients pay for different work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CostClass {
    /// Costs nothing (test nodes, and every node when no CPU model is set).
    #[default]
    Free,
    Broker,
    /// A dedicated controller node (KRaft controller); a broker's class when co-located.
    Controller,
    Producer,
    Consumer,
}

/// A piece of work a handler did, as the kernel sees it.
#[derive(Clone, Copy, Debug)]
pub enum Work<'a> {
    /// The node (re)started.
    Start,
    /// Reading and handling a message of `bytes` wire bytes.
    Receive(&'a Message, u32),
    /// A timer fired.
    Timer,
    /// An fsync completed.
    Disk,
    /// Building and writing an outgoing message of `bytes` wire bytes.
    Send(&'a Message, u32),
    /// A fact the handler recorded: the history reveals per-record client work (a
    /// `SendInvoke` is one record serialised, partitioned and appended to the accumulator; a
    /// `Poll` is one record deserialised and handed to the application).
    Record(&'a HistoryEvent),
}

/// CPU cost of work, by node class. Implementations must be pure functions of their
/// arguments (determinism).
pub trait CpuCost: Send + Sync + fmt::Debug {
    /// CPU time `work` takes on one core of a node of `class`.
    fn cost(&self, class: CostClass, work: &Work<'_>) -> Duration;
    /// Cores of a node of `class` (at least 1).
    fn cores(&self, class: CostClass) -> u32;
    /// Stop-the-world garbage collection of a node of `class`, if it runs on a JVM.
    fn gc(&self, _class: CostClass) -> Option<GcModel> {
        None
    }
}

/// Periodic stop-the-world pauses: a node of a class with a GC model stops every `interval`
/// for `pause`, starting at a per-node phase so nodes do not pause together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcModel {
    pub interval: Duration,
    pub pause: Duration,
}

/// A shared CPU cost function (compared by identity).
#[derive(Clone)]
pub struct Cpu(pub Arc<dyn CpuCost>);

impl fmt::Debug for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Cpu {
    fn eq(&self, other: &Cpu) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The cost model of a world. `CostModel::default()` is free: no CPU time, unlimited NICs,
/// no extra wire bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostModel {
    /// `None`: handling events takes no time.
    pub cpu: Option<Cpu>,
    /// Bytes per second each node's NIC moves in each direction (full duplex); 0 = unlimited.
    pub nic_bytes_per_sec: u64,
    /// Wire bytes added to every record in produce requests and fetch responses, for an era
    /// whose message format carried more framing than the engine's v2 records.
    pub extra_bytes_per_record: u32,
}

impl CostModel {
    /// Wire bytes of `msg` under this model.
    pub fn wire_bytes(&self, msg: &Message) -> u32 {
        let base = msg.wire_size();
        if self.extra_bytes_per_record == 0 {
            return base;
        }
        base.saturating_add(self.extra_bytes_per_record.saturating_mul(records_in(msg)))
    }
}

/// Records carried by a produce request or a fetch response (0 for other messages).
pub fn records_in(msg: &Message) -> u32 {
    match msg {
        Message::ProduceRequest(r) => r.batches.iter().map(|(_, b)| b.records.len() as u32).sum(),
        Message::FetchResponse(r) => r
            .partitions
            .iter()
            .flat_map(|p| &p.batches)
            .map(|b| b.records.len() as u32)
            .sum(),
        _ => 0,
    }
}

/// Batches carried by a produce request or a fetch response.
fn batches_in(msg: &Message) -> u32 {
    match msg {
        Message::ProduceRequest(r) => r.batches.len() as u32,
        Message::FetchResponse(r) => r.partitions.iter().map(|p| p.batches.len() as u32).sum(),
        _ => 0,
    }
}

// ------------------------------------------------------------------------------------------
// The constants. CPU costs are nanoseconds on one core of the reference machine, a 2014
// 2.5 GHz Xeon (Sandy/Ivy Bridge) running Java 7, and are divided by a profile's
// `core_speed`. Hardware figures come from the sources cited on each profile.

/// Broker: fixed cost of one request or response it handles (network thread read, request
/// handler dispatch, response queueing). Kafka 0.8 request metrics put the local time of a
/// small produce request at tens of microseconds; this is the CPU part of it.
pub const BROKER_PER_MESSAGE_NS: u64 = 20_000;
/// Broker: per byte of record data received (produce requests, a follower's fetch responses):
/// CRC check and offset assignment over the bytes, plus the copy into the page cache. Java 7's
/// CRC32 runs at roughly 1 GB/s per 2014 core.
pub const BROKER_PER_BYTE_IN_PS: u64 = 1_000;
/// Broker, message formats v0/v1 (Kafka 0.8 to 0.10, the `kreps2014` profile): per record
/// appended, as leader from a produce request and as follower from a fetch response. The 0.8
/// broker decoded every message of a message set, iterated them twice (validation, then
/// offset assignment), computed a CRC32 per message through JNI (Java 7 had no CRC
/// intrinsic) and allocated a few objects per message.
///
/// **This is the one constant calibrated rather than taken from a source**: the Kreps 2014
/// synchronous-replication row fixes it. That row is the only one whose throughput the
/// broker's per-record time limits: an acks=all request holds its connection (see
/// `socket.rs`) through the leader's append, the followers' fetch, append and next fetch,
/// so two appends lie on each request's critical path. With 0 us the row is at +91%, with
/// 1.5 us at +18%, with 2.0 us at +0.3%; of the other rows only three-producers moves (by 6
/// points, from -9% to -3%) between 0 and 2 us (`benches/KREPS2014.md`).
pub const BROKER_PER_RECORD_V0_NS: u64 = 2_000;
/// Broker, message format v2 (Kafka 0.11+): CRC and headers are per batch; appending an
/// uncompressed batch validates each record in place without copying it.
pub const BROKER_PER_RECORD_V2_NS: u64 = 100;
/// Broker: per byte of record data sent in fetch responses: `sendfile` zero copy, so only the
/// kernel's bookkeeping.
pub const BROKER_PER_BYTE_OUT_PS: u64 = 50;
/// Producer client: per record handed to `send()` (serialise, partition, append to the
/// accumulator under its lock). The 2014 Java producer's single user thread peaked near
/// 800k records/s of 100 bytes (Kreps 2014, single producer thread rows); with the per-request
/// and per-batch costs below on the same core this is about 1.2 us per record in all.
pub const PRODUCER_PER_RECORD_NS: u64 = 1_000;
/// Producer client: per request the sender thread builds and writes, and per response.
pub const CLIENT_PER_MESSAGE_NS: u64 = 15_000;
/// Producer client: per batch in a request (drain from the accumulator, batch header, CRC).
pub const PRODUCER_PER_BATCH_NS: u64 = 2_000;
/// Consumer client: per record returned by poll (iterate the fetched batch, CRC, deserialise,
/// hand to the application).
pub const CONSUMER_PER_RECORD_NS: u64 = 300;
/// Producer client cores. The application thread calling `send()` does the per-record work
/// and is what limits a producer (the sender thread idles most of the time); the kernel's cores
/// take any work, so a second core would split one application thread's records over two
/// cores. One core keeps the per-record work serial, as on the application thread.
pub const PRODUCER_CORES: u32 = 1;
/// Consumer client threads: the application thread and the fetcher / network thread.
pub const CONSUMER_CORES: u32 = 2;

// ------------------------------------------------------------------------------------------
// Compression (`compression.type`). Codec speeds are lzbench 1.8's published table (inikep/
// lzbench README: one core of an Intel Core i7-8700K, Silesia corpus, MB/s of uncompressed
// data): lz4 1.9.2 737 / 4448 (compress / decompress), zlib 1.2.11 -1 119, -6 35, -9 14 /
// 407, zstd 1.4.3 -1 480, -2 356, -5 104, -8 46, -11 20, -15 7.12, -18 3.58, -22 2.28 /
// about 1000 at the default levels (1203 at -1, 1067 at -2, 932 at -5). snappy is not in that
// table; the zstd README's table (one machine for all codecs) has snappy 1.1.8 at 560 / 1790
// against lz4 1.9.2 at 740 / 4530, so snappy is lz4's lzbench figures × those ratios: 558 /
// 1758. The clients call these C libraries (zstd-jni, lz4-java's JNI, snappy-java, zlib
// through java.util.zip; librdkafka links them; sarama and kafka-go use Go ports of similar
// speed), so one table serves every client.

/// The lzbench machine's core (i7-8700K at its 4.7 GHz single-core turbo, Coffee Lake)
/// against the reference 2.5 GHz Ivy Bridge core: 4.7 / 2.5 = 1.88 in clock, times about
/// 1.15 for the Skylake-family's work per clock over Ivy Bridge.
pub const LZBENCH_CORE_SPEED: f64 = 2.2;
/// lz4 (fast mode; Kafka's `Lz4BlockOutputStream` default) MB/s on the lzbench core.
pub const LZ4_COMPRESS_MB_S: f64 = 737.0;
pub const LZ4_DECOMPRESS_MB_S: f64 = 4448.0;
pub const SNAPPY_COMPRESS_MB_S: f64 = 558.0;
pub const SNAPPY_DECOMPRESS_MB_S: f64 = 1758.0;
/// zlib compression by level (see the table above); decompression barely depends on it.
pub const GZIP_COMPRESS_MB_S: [(i32, f64); 3] = [(1, 119.0), (6, 35.0), (9, 14.0)];
pub const GZIP_DECOMPRESS_MB_S: f64 = 407.0;
pub const ZSTD_COMPRESS_MB_S: [(i32, f64); 8] = [
    (1, 480.0),
    (2, 356.0),
    (5, 104.0),
    (8, 46.0),
    (11, 20.0),
    (15, 7.12),
    (18, 3.58),
    (22, 2.28),
];
pub const ZSTD_DECOMPRESS_MB_S: f64 = 1000.0;

/// Compression speed (MB/s on the lzbench core) of `codec` at `level`: a level between two
/// table rows is interpolated in log space (speeds fall geometrically with the level).
pub fn compress_mb_per_sec(codec: CompressionType, level: Option<i32>) -> f64 {
    let level = effective_level(codec, level);
    let table: &[(i32, f64)] = match codec {
        CompressionType::None => return f64::INFINITY,
        CompressionType::Lz4 => return LZ4_COMPRESS_MB_S,
        CompressionType::Snappy => return SNAPPY_COMPRESS_MB_S,
        CompressionType::Gzip => &GZIP_COMPRESS_MB_S,
        CompressionType::Zstd => &ZSTD_COMPRESS_MB_S,
    };
    let logs: Vec<(i32, f64)> = table.iter().map(|&(l, v)| (l, v.ln())).collect();
    interpolate(&logs, level.unwrap_or(1)).exp()
}

/// Decompression speed (MB/s on the lzbench core) of `codec`.
pub fn decompress_mb_per_sec(codec: CompressionType) -> f64 {
    match codec {
        CompressionType::None => f64::INFINITY,
        CompressionType::Gzip => GZIP_DECOMPRESS_MB_S,
        CompressionType::Snappy => SNAPPY_DECOMPRESS_MB_S,
        CompressionType::Lz4 => LZ4_DECOMPRESS_MB_S,
        CompressionType::Zstd => ZSTD_DECOMPRESS_MB_S,
    }
}

/// Picoseconds per uncompressed byte on the reference core at `mb_per_sec` on the lzbench core.
fn codec_ps_per_byte(mb_per_sec: f64) -> f64 {
    if mb_per_sec.is_infinite() {
        return 0.0;
    }
    1e6 * LZBENCH_CORE_SPEED / mb_per_sec
}

/// Which way a node runs a codec over the record batches of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CodecWork {
    Compress,
    Decompress,
}

/// Reference-core nanoseconds to run the codecs over the compressed batches of `msg` (produce
/// requests and fetch responses; 0 for uncompressed batches and other messages).
fn codec_ns(msg: &Message, work: CodecWork) -> u64 {
    let batches: Box<dyn Iterator<Item = &RecordBatch>> = match msg {
        Message::ProduceRequest(r) => Box::new(r.batches.iter().map(|(_, b)| b)),
        Message::FetchResponse(r) => Box::new(r.partitions.iter().flat_map(|p| &p.batches)),
        _ => return 0,
    };
    let mut ps = 0.0;
    for b in batches {
        let c = b.compression;
        if c.codec == CompressionType::None {
            continue;
        }
        let speed = match work {
            CodecWork::Compress => compress_mb_per_sec(c.codec, c.level()),
            CodecWork::Decompress => decompress_mb_per_sec(c.codec),
        };
        ps += b.records_size() as f64 * codec_ps_per_byte(speed);
    }
    (ps / 1_000.0) as u64
}

/// Ethernet goodput: a 1500-byte MTU frame carries 1448 bytes of TCP payload (IPv4 20 + TCP
/// with timestamps 32) in 1538 bytes of wire time (preamble 8, header 14, FCS 4, gap 12).
pub fn ethernet_goodput_bytes_per_sec(bits_per_sec: u64) -> u64 {
    bits_per_sec / 8 * 1448 / 1538
}

/// The CPU cost of one hardware profile: the constants above at the profile's core speed.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileCpu {
    /// Cores of a broker (and controller) machine.
    pub broker_cores: u32,
    /// Per-core speed relative to the reference 2014 2.5 GHz Xeon core.
    pub core_speed: f64,
    /// Broker CPU per record appended on the reference core (the message format's cost).
    pub broker_per_record_ns: u64,
    pub gc: Option<GcModel>,
}

impl ProfileCpu {
    fn scaled(&self, ns: u64) -> u64 {
        (ns as f64 / self.core_speed) as u64
    }

    fn scaled_ps(&self, ps_per_byte: u64, bytes: u64) -> u64 {
        (((ps_per_byte * bytes) / 1_000) as f64 / self.core_speed) as u64
    }

    fn broker(&self, work: &Work<'_>) -> u64 {
        match work {
            Work::Receive(msg, bytes) => {
                let records = records_in(msg) as u64;
                let data = if records > 0 {
                    self.scaled_ps(BROKER_PER_BYTE_IN_PS, *bytes as u64)
                        + self.scaled(self.broker_per_record_ns * records)
                } else {
                    0
                };
                // The leader validates every record of a compressed batch, so it decompresses
                // it (`LogValidator.validateMessagesAndAssignOffsetsCompressed`; in place, no
                // recompression, when the topic keeps the producer's codec). Followers append
                // fetched batches as they are.
                let validate = if matches!(msg, Message::ProduceRequest(_)) {
                    self.scaled(codec_ns(msg, CodecWork::Decompress))
                } else {
                    0
                };
                self.scaled(BROKER_PER_MESSAGE_NS) + data + validate
            }
            Work::Send(msg, bytes) if records_in(msg) > 0 => {
                self.scaled_ps(BROKER_PER_BYTE_OUT_PS, *bytes as u64)
            }
            _ => 0,
        }
    }

    fn client(&self, class: CostClass, work: &Work<'_>) -> u64 {
        match work {
            // A consumer decompresses the batches it fetched.
            Work::Receive(msg, _) => {
                self.scaled(CLIENT_PER_MESSAGE_NS + codec_ns(msg, CodecWork::Decompress))
            }
            // A producer compresses the batches it sends (Java does it as records are
            // appended, librdkafka and sarama when they build the request; all on the one
            // producer core of the model).
            Work::Send(msg, _) => self.scaled(
                CLIENT_PER_MESSAGE_NS
                    + PRODUCER_PER_BATCH_NS * batches_in(msg) as u64
                    + codec_ns(msg, CodecWork::Compress),
            ),
            Work::Record(HistoryEvent::SendInvoke { .. }) if class == CostClass::Producer => {
                self.scaled(PRODUCER_PER_RECORD_NS)
            }
            Work::Record(HistoryEvent::Poll { .. }) if class == CostClass::Consumer => {
                self.scaled(CONSUMER_PER_RECORD_NS)
            }
            _ => 0,
        }
    }
}

impl CpuCost for ProfileCpu {
    fn cost(&self, class: CostClass, work: &Work<'_>) -> Duration {
        let ns = match class {
            CostClass::Free => 0,
            CostClass::Broker | CostClass::Controller => self.broker(work),
            CostClass::Producer | CostClass::Consumer => self.client(class, work),
        };
        Duration::from_nanos(ns)
    }

    fn cores(&self, class: CostClass) -> u32 {
        match class {
            CostClass::Free => 1,
            CostClass::Broker | CostClass::Controller => self.broker_cores.max(1),
            CostClass::Producer => PRODUCER_CORES,
            CostClass::Consumer => CONSUMER_CORES,
        }
    }

    fn gc(&self, class: CostClass) -> Option<GcModel> {
        match class {
            CostClass::Broker | CostClass::Controller => self.gc,
            _ => None,
        }
    }
}

/// A modelled machine: every node of a run (brokers and clients alike) is one.
#[derive(Clone, Debug, PartialEq)]
pub struct HardwareProfile {
    pub name: &'static str,
    /// What it is and where its figures come from.
    pub description: &'static str,
    pub cores: u32,
    /// Per-core speed relative to a 2014 2.5 GHz Xeon core.
    pub core_speed: f64,
    pub memory_bytes: u64,
    /// Sequential write bandwidth of all the machine's data disks together.
    pub disk_bytes_per_sec: u64,
    pub fsync_latency: Duration,
    /// NIC line rate, bits per second, each direction.
    pub nic_bits_per_sec: u64,
    /// One-way latency between two machines (wire, switch, both TCP stacks).
    pub latency: Duration,
    /// Uniform extra latency per message, `0..=jitter`.
    pub jitter: Duration,
    /// See [`CostModel::extra_bytes_per_record`].
    pub extra_bytes_per_record: u32,
    /// Broker CPU per record appended, by the era's message format
    /// ([`BROKER_PER_RECORD_V0_NS`], [`BROKER_PER_RECORD_V2_NS`]).
    pub broker_per_record_ns: u64,
    /// Broker JVM garbage collection.
    pub gc: Option<GcModel>,
}

/// Linux's default `vm.dirty_background_ratio` (`mm/page-writeback.c`,
/// `dirty_background_ratio = 10`): the flusher starts writing dirty pages back once 10% of
/// dirtyable memory is dirty.
pub const DIRTY_BACKGROUND_RATIO_PERCENT: u64 = 10;
/// Linux's default `vm.dirty_ratio` (`mm/page-writeback.c`, `vm_dirty_ratio = 20`): writers
/// are throttled ever harder from halfway between the two ratios and stop at 20%.
pub const DIRTY_RATIO_PERCENT: u64 = 20;
/// The broker JVM's heap, which is not page cache: `bin/kafka-server-start.sh` sets
/// `-Xmx1G -Xms1G` unless `KAFKA_HEAP_OPTS` says otherwise. Linux computes the dirty ratios
/// over *dirtyable* memory (free and file-backed pages, `global_dirtyable_memory`), which is
/// the machine's memory less anonymous memory such as this heap.
pub const BROKER_HEAP_BYTES: u64 = 1 << 30;

const GB: u64 = 1_000_000_000;
const GIB: u64 = 1 << 30;
const MB: u64 = 1_000_000;

/// The names [`profile`] knows.
pub const PROFILE_NAMES: [&str; 3] = ["default", "kreps2014", "i3en.2xlarge"];

/// The hardware profile called `name`.
pub fn profile(name: &str) -> Option<HardwareProfile> {
    match name {
        "kreps2014" => Some(HardwareProfile {
            name: "kreps2014",
            description: "Kreps 2014 \"2 million writes per second\" machines: Intel Xeon \
                          2.5 GHz six-core, 32 GB, six 7200 rpm SATA disks (~822 MB/s linear \
                          writes together), 1 Gb Ethernet, Kafka 0.8.1 on Java 7",
            cores: 6,
            core_speed: 1.0,
            memory_bytes: 32 * GIB,
            disk_bytes_per_sec: 822 * MB,
            // A 7200 rpm disk turns in 8.3 ms; an fsync of appended data waits about a turn.
            fsync_latency: Duration::from_millis(8),
            nic_bits_per_sec: GB,
            // Same-rack 1 GbE and 2014 kernels / JVMs: ~0.2 ms one way, a little jitter.
            latency: Duration::from_micros(200),
            jitter: Duration::from_micros(100),
            // Message format v0 (Kafka 0.8): offset 8, size 4, crc 4, magic 1, attributes 1,
            // key length 4, value length 4 = 26 bytes per message, "about 22 bytes" in the
            // post; the engine's v2 records carry 8, so 14 more make the 2014 wire size.
            extra_bytes_per_record: 14,
            broker_per_record_ns: BROKER_PER_RECORD_V0_NS,
            // Young-generation pauses of a broker JVM: the Kafka documentation (Operations,
            // "Java Version") reports LinkedIn's brokers at a 90th-percentile pause of
            // about 21 ms with less than one young GC per second; the 2014 brokers of the
            // post, with far less load than production, are modelled at a 14 ms pause every
            // 8 s (what the post's 99.9th-percentile end-to-end latency of 14 ms implies).
            gc: Some(GcModel {
                interval: Duration::from_secs(8),
                pause: Duration::from_millis(14),
            }),
        }),
        "i3en.2xlarge" => Some(HardwareProfile {
            name: "i3en.2xlarge",
            description: "AWS i3en.2xlarge (the OpenMessaging Benchmark's Kafka instance): \
                          8 vCPU (Xeon Platinum 8259CL, 4 cores with hyper-threading), 64 GiB, \
                          two NVMe SSDs (~655 MB/s sequential writes together), up to 25 Gb/s",
            cores: 8,
            // A 3.1 GHz Cascade Lake hyper-thread against a 2.5 GHz Ivy Bridge core.
            core_speed: 1.3,
            memory_bytes: 64 * GIB,
            disk_bytes_per_sec: 655 * MB,
            fsync_latency: Duration::from_micros(100),
            nic_bits_per_sec: 25 * GB,
            // Within one availability zone.
            latency: Duration::from_micros(60),
            jitter: Duration::from_micros(40),
            extra_bytes_per_record: 0,
            broker_per_record_ns: BROKER_PER_RECORD_V2_NS,
            // G1 on a current JDK: short young pauses.
            gc: Some(GcModel {
                interval: Duration::from_secs(2),
                pause: Duration::from_millis(5),
            }),
        }),
        "default" => Some(HardwareProfile {
            name: "default",
            description: "A modern server: 16 cores, 128 GiB, NVMe (2 GB/s sequential writes), \
                          10 Gb Ethernet",
            cores: 16,
            core_speed: 2.0,
            memory_bytes: 128 * GIB,
            disk_bytes_per_sec: 2 * GB,
            fsync_latency: Duration::from_micros(50),
            nic_bits_per_sec: 10 * GB,
            latency: Duration::from_micros(50),
            jitter: Duration::from_micros(30),
            extra_bytes_per_record: 0,
            broker_per_record_ns: BROKER_PER_RECORD_V2_NS,
            gc: Some(GcModel {
                interval: Duration::from_secs(2),
                pause: Duration::from_millis(3),
            }),
        }),
        _ => None,
    }
}

impl HardwareProfile {
    /// The CPU cost function of this profile.
    pub fn cpu(&self) -> ProfileCpu {
        ProfileCpu {
            broker_cores: self.cores,
            core_speed: self.core_speed,
            broker_per_record_ns: self.broker_per_record_ns,
            gc: self.gc,
        }
    }

    /// The page cache's dirty thresholds on this machine (Linux defaults over the memory
    /// the broker's heap leaves).
    pub fn dirty_thresholds(&self) -> DirtyThresholds {
        let dirtyable = self.memory_bytes.saturating_sub(BROKER_HEAP_BYTES);
        DirtyThresholds {
            background_bytes: dirtyable / 100 * DIRTY_BACKGROUND_RATIO_PERCENT,
            limit_bytes: dirtyable / 100 * DIRTY_RATIO_PERCENT,
        }
    }

    /// What the disks bound: record bytes per second a cluster of `brokers` such machines
    /// can take in for good at replication factor `replication` (every replica writes every
    /// byte once: disk bandwidth × brokers / replication). Bursts ride the page cache above
    /// it until dirty data reaches the freerun point.
    pub fn disk_bound_bytes_per_sec(&self, brokers: u32, replication: u32) -> u64 {
        self.disk_bytes_per_sec * brokers as u64 / replication.max(1) as u64
    }

    /// The profile's cost model.
    pub fn cost_model(&self) -> CostModel {
        CostModel {
            cpu: Some(Cpu(Arc::new(self.cpu()))),
            nic_bytes_per_sec: ethernet_goodput_bytes_per_sec(self.nic_bits_per_sec),
            extra_bytes_per_record: self.extra_bytes_per_record,
        }
    }

    /// A world configuration that models this machine (links, disks, CPU, NIC).
    pub fn world_config(&self) -> WorldConfig {
        WorldConfig {
            link: LinkConfig {
                latency: self.latency,
                jitter: self.jitter,
                ..LinkConfig::default()
            },
            disk: DiskConfig {
                fsync_latency: self.fsync_latency,
                bandwidth_bytes_per_sec: self.disk_bytes_per_sec,
                dirty: Some(self.dirty_thresholds()),
                ..DiskConfig::default()
            },
            cost: self.cost_model(),
            ..WorldConfig::default()
        }
    }
}
