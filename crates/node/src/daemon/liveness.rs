//! Who is there: connections opening and closing, pings, and the departure
//! timeout. A peer is gone when its last connection closes; one that stops
//! answering without closing is disconnected once no ping has been answered
//! for `departure_timeout` (pings every quarter of it).

use std::time::{Duration, Instant};

use sharegrid_net::{ConnectionId, PeerId, ping};

use super::{Daemon, NodeEvent};

/// How long the reason a peer's connection was closed is kept, so that
/// requests failing with it can say so.
const PING_FAILURE_MEMORY: Duration = Duration::from_secs(60);

impl Daemon {
    pub(super) fn on_connected(&mut self, peer: PeerId, connection: ConnectionId, established: u32) {
        self.ping_failures.remove(&peer);
        self.last_heard.entry(peer).or_insert_with(Instant::now);
        if self.banned.contains(&peer) {
            self.swarm.close_connection(connection);
        } else if established == 1 {
            tracing::debug!(%peer, "connected");
            self.metrics.peers.set(self.swarm.connected_peers().count() as i64);
            self.emit(NodeEvent::Connected(peer));
            self.follower_connected(peer);
        }
    }

    pub(super) fn on_disconnected(&mut self, peer: PeerId, cause: Option<String>) {
        // Kept until the peer reconnects: requests failing with this
        // connection are reported after this event.
        let why = self
            .ping_failures
            .get(&peer)
            .map(|(why, _)| why.clone())
            .or(cause)
            .unwrap_or_else(|| "connection closed".into());
        self.last_heard.remove(&peer);
        self.metrics.peers.set(self.swarm.connected_peers().count() as i64);
        tracing::info!(%peer, %why, "peer gone");
        self.book.remove_peer(&peer);
        self.rates.forget(&peer);
        self.emit(NodeEvent::PeerGone { peer, why });
    }

    pub(super) fn on_ping(&mut self, ev: ping::Event) {
        match ev.result {
            Ok(_) if self.swarm.is_connected(&ev.peer) => {
                self.last_heard.insert(ev.peer, Instant::now());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!(peer = %ev.peer, error = %e, "ping failed: closing the connection");
                self.ping_failures
                    .insert(ev.peer, (format!("ping failed ({e})"), Instant::now()));
                self.swarm.close_connection(ev.connection);
            }
        }
    }

    /// Why `peer`'s connection was closed, if a ping failure closed it.
    pub(super) fn closed_why(&self, peer: &PeerId) -> Option<&str> {
        self.ping_failures.get(peer).map(|(why, _)| why.as_str())
    }

    pub(super) fn forget_old_ping_failures(&mut self) {
        let now = Instant::now();
        self.ping_failures
            .retain(|_, (_, at)| now.duration_since(*at) < PING_FAILURE_MEMORY);
    }

    /// Closes connections to peers that answered no ping within the
    /// departure timeout.
    pub(super) fn check_liveness(&mut self) {
        let now = Instant::now();
        let silent: Vec<PeerId> = self
            .last_heard
            .iter()
            .filter(|(_, at)| now.duration_since(**at) > self.departure_timeout)
            .map(|(p, _)| *p)
            .collect();
        for peer in silent {
            self.last_heard.remove(&peer);
            let why = format!("no answer to ping for {:?} (departure timeout)", self.departure_timeout);
            tracing::info!(%peer, "{why}: closing its connections");
            self.ping_failures.insert(peer, (why, now));
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}
