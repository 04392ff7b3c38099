//! Prometheus metrics of a node, served at `GET /metrics` in the OpenMetrics text format
//! (which Prometheus scrapes natively), encoded by the `prometheus-client` crate.
//!
//! Transfer durations are histograms updated as transfers end; everything else (store, peers,
//! peer traffic and requests, repair) is read from the node's state at scrape time.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use voldisefs_net::{Network, PeerState};

use crate::replication::{Cluster, Repairer};
use crate::transfer::kdf_gate::KdfGate;

/// Label set of the duration histograms: `outcome` = `ok`, `error` or `aborted`.
type OutcomeLabel = [(&'static str, &'static str); 1];
type Durations = Family<OutcomeLabel, Histogram, fn() -> Histogram>;

/// 50 ms to about 7 minutes, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// A node's metric registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    uploads: Durations,
    downloads: Durations,
}

impl Metrics {
    /// The registry over a node's state: its `cluster` (store, peer health), its `network`
    /// (membership, traffic), `repair`'s counters and the `kdf` gate, all read at scrape time.
    pub(crate) fn new(
        cluster: Cluster,
        network: Network,
        repair: Repairer,
        kdf: Arc<KdfGate>,
    ) -> Self {
        let mut registry = Registry::with_prefix("voldisefs");
        let uploads: Durations = Family::new_with_constructor(duration_histogram);
        let downloads: Durations = Family::new_with_constructor(duration_histogram);
        registry.register(
            "upload_duration_seconds",
            "Time to upload a file through this node (KDF, sealing, storing every copy)",
            uploads.clone(),
        );
        registry.register(
            "download_duration_seconds",
            "Time to download a file through this node, until its last byte was handed out",
            downloads.clone(),
        );
        registry.register_collector(Box::new(StateCollector {
            cluster,
            network,
            repair,
            kdf,
        }));
        Self {
            registry,
            uploads,
            downloads,
        }
    }

    /// Records a finished upload.
    pub(crate) fn upload(&self, outcome: &'static str, seconds: f64) {
        self.uploads
            .get_or_create(&[("outcome", outcome)])
            .observe(seconds);
    }

    /// Records a finished download.
    pub(crate) fn download(&self, outcome: &'static str, seconds: f64) {
        self.downloads
            .get_or_create(&[("outcome", outcome)])
            .observe(seconds);
    }

    /// Everything, in the OpenMetrics text format.
    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the node's state on every scrape.
#[derive(Debug)]
struct StateCollector {
    cluster: Cluster,
    network: Network,
    repair: Repairer,
    kdf: Arc<KdfGate>,
}

/// Writes one unlabeled metric.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let stats = self.cluster.store_stats();
        single(
            e,
            "store_chunks",
            "Chunks held by this node",
            ConstGauge::new(stats.chunks as i64),
        )?;
        single(
            e,
            "store_bytes",
            "Bytes held by this node",
            ConstGauge::new(stats.bytes as i64),
        )?;
        single(
            e,
            "store_capacity_bytes",
            "Bytes this node may hold",
            ConstGauge::new(stats.capacity.min(i64::MAX as u64) as i64),
        )?;
        single(
            e,
            "tombstones",
            "Ids of deleted chunks this node refuses to store again",
            ConstGauge::new(self.cluster.tombstone_count() as i64),
        )?;
        single(
            e,
            "proof_bytes_granted",
            "Bytes of proof-of-possession hashing granted to peers (rate-limited per peer and in all)",
            ConstCounter::new(self.cluster.proof_bytes_granted()),
        )?;
        single(
            e,
            "tombstone_bytes",
            "Bytes the tombstone table holds (hash table and queues, by capacity)",
            ConstGauge::new(self.cluster.tombstone_bytes().min(i64::MAX as usize) as i64),
        )?;

        let peers = self.network.membership().snapshot();
        let mut by_state = e.encode_descriptor(
            "peers",
            "Known peers by state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for state in [
            PeerState::Alive,
            PeerState::Suspect,
            PeerState::Unverified,
            PeerState::Dead,
            PeerState::Left,
        ] {
            let n = peers.iter().filter(|p| p.state == state).count() as i64;
            ConstGauge::new(n).encode(by_state.encode_family(&[("state", state.as_str())])?)?;
        }

        let demoted = peers
            .iter()
            .filter(|p| self.cluster.peer_health(&p.info.id).demoted)
            .count();
        single(
            e,
            "peers_demoted",
            "Peers ranked last for now because they failed a get, put, proof or has_chunks question",
            ConstGauge::new(demoted as i64),
        )?;
        let mut failures = e.encode_descriptor(
            "holder_failures",
            "Gets, puts, proofs of possession and has_chunks questions peers failed (timeout, error, wrong answer)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (kind, n) in self.cluster.failure_counts() {
            ConstCounter::new(n).encode(failures.encode_family(&[("kind", kind.as_str())])?)?;
        }

        let traffic = self.network.traffic();
        let mut bytes = e.encode_descriptor(
            "peer_traffic_bytes",
            "Bytes of peer frames sent (out) and received (in)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        ConstCounter::new(traffic.bytes_in).encode(bytes.encode_family(&[("direction", "in")])?)?;
        ConstCounter::new(traffic.bytes_out)
            .encode(bytes.encode_family(&[("direction", "out")])?)?;

        let mut gossip = e.encode_descriptor(
            "gossip_traffic_bytes",
            "Bytes of membership datagrams sent (out) and received (in)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        ConstCounter::new(traffic.datagram_bytes_in)
            .encode(gossip.encode_family(&[("direction", "in")])?)?;
        ConstCounter::new(traffic.datagram_bytes_out)
            .encode(gossip.encode_family(&[("direction", "out")])?)?;

        let mut requests = e.encode_descriptor(
            "peer_requests",
            "Peer requests served (in) and sent (out), by kind and outcome",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in self.network.request_stats() {
            let labels = [
                ("direction", s.direction),
                ("kind", s.kind),
                ("outcome", s.outcome),
            ];
            ConstCounter::new(s.count).encode(requests.encode_family(&labels)?)?;
        }

        single(
            e,
            "kdf_running",
            "Argon2id key derivations running now",
            ConstGauge::new(self.kdf.running() as i64),
        )?;
        single(
            e,
            "kdf_runs",
            "Argon2id key derivations started (one per upload, batch, or uncached read)",
            ConstCounter::new(self.kdf.runs()),
        )?;
        single(
            e,
            "kdf_cache_hits",
            "Reads whose password key came from the cache (no Argon2id run)",
            ConstCounter::new(self.kdf.hits()),
        )?;
        single(
            e,
            "transfer_window_growth_bytes",
            "Bytes by which transfers have grown their windows for slow links now (at most the node's budget)",
            ConstGauge::new(i64::try_from(self.cluster.window_growth()).unwrap_or(i64::MAX)),
        )?;
        single(
            e,
            "clock_correction_seconds",
            "Seconds this node's clock is moved forward to follow its peers' (0: it agrees with them)",
            ConstGauge::new(i64::try_from(self.cluster.clock().correction()).unwrap_or(i64::MAX)),
        )?;
        single(
            e,
            "kdf_cache_keys",
            "Password keys held in the key cache now (each forgotten within a second of its maximum age)",
            ConstGauge::new(self.kdf.cache().len() as i64),
        )?;
        single(
            e,
            "kdf_busy",
            "Requests refused because every key-derivation slot stayed taken",
            ConstCounter::new(self.kdf.refused()),
        )?;

        let r = self.repair.counters();
        single(
            e,
            "repair_backlog_chunks",
            "Chunks this node still has to copy to a holder (as of its last sweep)",
            ConstGauge::new(r.backlog as i64),
        )?;
        single(
            e,
            "repair_copies",
            "Copies made by repair and hand-off",
            ConstCounter::new(r.pushed),
        )?;
        single(
            e,
            "repair_dropped",
            "Extra copies dropped after their holders confirmed theirs",
            ConstCounter::new(r.dropped),
        )?;
        single(
            e,
            "repair_failures",
            "Copies repair attempted without success (retried later)",
            ConstCounter::new(r.failed),
        )
    }
}
