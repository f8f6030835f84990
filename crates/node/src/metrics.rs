//! What an operator graphs: counters, gauges and histograms of one node, in
//! a Prometheus registry (the `prometheus-client` crate libp2p uses), ready
//! to be served at a metrics endpoint ([`Metrics::encode`] renders the text
//! exposition format).
//!
//! The role machines stay pure: the shells around them count what they
//! carry out. Every metric is named `sharegrid_…`; labels are few and
//! bounded (an outcome kind, a verdict, a misbehaviour kind), never an id.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One label: a kind (an outcome, a verdict, a misbehaviour).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The kind.
    pub kind: String,
}

impl Kind {
    fn of(kind: &str) -> Kind {
        Kind { kind: kind.to_string() }
    }
}

/// The node's metrics. Cheap to clone (every metric is shared).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Provider: runs that ended with a receipt, by outcome kind.
    pub tasks_run: Family<Kind, Counter>,
    /// Provider: fuel of those runs.
    pub fuel_executed: Counter,
    /// Provider: assignments refused.
    pub assignments_refused: Counter,
    /// Provider: runs in flight (fetching, running, delivering).
    pub runs_in_flight: Gauge,
    /// Work waiting on or running in the blocking pool (runs, blob reads
    /// and writes, ledger work).
    pub blocking_in_flight: Gauge,
    /// Requestor: receipts received, by verdict when known
    /// (`received`, `agreed`, `dissent`).
    pub receipts: Family<Kind, Counter>,
    /// Requestor: tasks accepted by quorum.
    pub tasks_accepted: Counter,
    /// Requestor: tasks failed.
    pub tasks_failed: Counter,
    /// Requestor: jobs running.
    pub jobs_running: Gauge,
    /// Payment: requests waiting in the payment task's queue.
    pub payment_queue: Gauge,
    /// Payment: seconds from a settlement's request to its last batch in a block.
    pub settlement_latency: Histogram,
    /// Payment: ledger transactions that failed, by retryable or not.
    pub payment_failures: Family<Kind, Counter>,
    /// Network: live offers known.
    pub offers: Gauge,
    /// Network: connected peers.
    pub peers: Gauge,
    /// Network: bad input rejected, by kind.
    pub misbehaviour: Family<Kind, Counter>,
    /// Ledger: height of the head.
    pub block_height: Gauge,
    /// Network: bytes read from peers' libp2p connections.
    pub bytes_in: Counter,
    /// Network: bytes written to them.
    pub bytes_out: Counter,
    /// What the swarm's connections count ([`Metrics::traffic`]); copied
    /// into `bytes_in` and `bytes_out` when the metrics are read, one
    /// reader at a time.
    traffic: sharegrid_net::Traffic,
    synced: Arc<std::sync::Mutex<()>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("sharegrid");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            tasks_run: Family::default(),
            fuel_executed: Counter::default(),
            assignments_refused: Counter::default(),
            runs_in_flight: Gauge::default(),
            blocking_in_flight: Gauge::default(),
            receipts: Family::default(),
            tasks_accepted: Counter::default(),
            tasks_failed: Counter::default(),
            jobs_running: Gauge::default(),
            payment_queue: Gauge::default(),
            settlement_latency: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            payment_failures: Family::default(),
            offers: Gauge::default(),
            peers: Gauge::default(),
            misbehaviour: Family::default(),
            block_height: Gauge::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            traffic: sharegrid_net::Traffic::default(),
            synced: Arc::default(),
        };
        r.register("tasks_run", "Tasks this provider ran, by outcome", m.tasks_run.clone());
        r.register(
            "fuel_executed",
            "Fuel of the tasks this provider ran",
            m.fuel_executed.clone(),
        );
        r.register(
            "assignments_refused",
            "Assignments this provider refused",
            m.assignments_refused.clone(),
        );
        r.register("runs_in_flight", "Provider runs in flight", m.runs_in_flight.clone());
        r.register(
            "blocking_in_flight",
            "Work queued on or running in the blocking pool",
            m.blocking_in_flight.clone(),
        );
        r.register("receipts", "Receipts received, by verdict", m.receipts.clone());
        r.register("tasks_accepted", "Tasks accepted by quorum", m.tasks_accepted.clone());
        r.register("tasks_failed", "Tasks that failed", m.tasks_failed.clone());
        r.register("jobs_running", "Jobs running", m.jobs_running.clone());
        r.register(
            "payment_queue",
            "Requests waiting for the payment task",
            m.payment_queue.clone(),
        );
        r.register(
            "settlement_latency_seconds",
            "From a settlement's request to its last batch in a block",
            m.settlement_latency.clone(),
        );
        r.register(
            "payment_failures",
            "Ledger transactions of the payment task that failed",
            m.payment_failures.clone(),
        );
        r.register("offers", "Live offers known", m.offers.clone());
        r.register("peers", "Connected peers", m.peers.clone());
        r.register("misbehaviour", "Bad input rejected, by kind", m.misbehaviour.clone());
        r.register("block_height", "Height of the ledger's head", m.block_height.clone());
        r.register(
            "network_bytes_in",
            "Bytes read from peers over libp2p (TCP, under Noise and Yamux)",
            m.bytes_in.clone(),
        );
        r.register(
            "network_bytes_out",
            "Bytes written to peers over libp2p (TCP, under Noise and Yamux)",
            m.bytes_out.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// The counts the node's swarm adds its connections' bytes to.
    pub fn traffic(&self) -> &sharegrid_net::Traffic {
        &self.traffic
    }

    /// Counts a run that ended with a receipt.
    pub fn task_run(&self, outcome: &sharegrid_core::Outcome, fuel: sharegrid_core::Fuel) {
        self.tasks_run.get_or_create(&Kind::of(outcome.kind())).inc();
        self.fuel_executed.inc_by(fuel.0);
    }

    /// Counts a receipt by verdict.
    pub fn receipt(&self, verdict: &str) {
        self.receipts.get_or_create(&Kind::of(verdict)).inc();
    }

    /// Counts bad input by kind.
    pub fn misbehaved(&self, kind: &str) {
        self.misbehaviour.get_or_create(&Kind::of(kind)).inc();
    }

    /// Counts a failed payment transaction.
    pub fn payment_failed(&self, retryable: bool) {
        let kind = if retryable { "retryable" } else { "rejected" };
        self.payment_failures.get_or_create(&Kind::of(kind)).inc();
    }

    /// The text exposition format, for a `/metrics` endpoint.
    pub fn encode(&self) -> String {
        {
            let _one = self.synced.lock().unwrap_or_else(|p| p.into_inner());
            let (i, o) = (self.traffic.bytes_in(), self.traffic.bytes_out());
            self.bytes_in.inc_by(i.saturating_sub(self.bytes_in.get()));
            self.bytes_out.inc_by(o.saturating_sub(self.bytes_out.get()));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_render() {
        let m = Metrics::new();
        m.task_run(&sharegrid_core::Outcome::OutOfFuel, sharegrid_core::Fuel(7));
        m.receipt("agreed");
        m.block_height.set(3);
        let text = m.encode();
        assert!(text.contains("sharegrid_fuel_executed_total 7"), "{text}");
        assert!(text.contains("sharegrid_receipts_total{kind=\"agreed\"} 1"), "{text}");
        assert!(text.contains("sharegrid_block_height 3"), "{text}");
    }
}
