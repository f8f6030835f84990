//! Joining a network from one address: `sharegrid init --join ADDRESS`
//! dials the peer with a throwaway identity, asks its ledger for the
//! network's genesis (`LedgerRequest::Genesis`) and learns its peer id, so
//! the home can record the genesis and the peer as a bootstrap
//! ([`crate::NodeHome::join`]). The genesis is checked only against a hash
//! the user gives; without one, its hash is shown for them to compare with
//! what the network's operator publishes.

use std::time::Duration;

use futures::StreamExt;
use sharegrid_core::NodeKey;
use sharegrid_ledger::Genesis;
use sharegrid_net::{BehaviourEvent, LedgerRequest, LedgerResponse, Multiaddr, NetConfig, SwarmEvent, build_swarm};

/// Why a network could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The address is neither a multiaddr nor HOST:PORT.
    #[error("{0:?} is not an address (examples: 192.0.2.7:4001, /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…)")]
    BadAddress(String),
    /// The peer could not be reached.
    #[error("cannot reach {addr}: {why}")]
    Unreachable {
        /// The address.
        addr: Multiaddr,
        /// Why.
        why: String,
    },
    /// The peer answered, but not with a genesis.
    #[error("{addr} did not give its network's genesis: {why}")]
    NoGenesis {
        /// The address.
        addr: Multiaddr,
        /// What it said.
        why: String,
    },
    /// The network is not the one the user expected.
    #[error("the network at {addr} has genesis {got}, not {expected}: nothing was changed")]
    WrongNetwork {
        /// The address.
        addr: Multiaddr,
        /// Its genesis hash.
        got: String,
        /// The hash given.
        expected: String,
    },
    /// The network layer failed to start.
    #[error("network: {0}")]
    Net(String),
}

/// `ADDRESS` as a multiaddr: one already, or `HOST:PORT` over TCP.
pub fn parse_join_address(text: &str) -> Result<Multiaddr, JoinError> {
    if text.starts_with('/') {
        return text.parse().map_err(|_| JoinError::BadAddress(text.into()));
    }
    let bad = || JoinError::BadAddress(text.into());
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("/ip4/{ip}/tcp/{port}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("/ip6/{ip}/tcp/{port}"),
        Err(_) if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') => {
            format!("/dns/{host}/tcp/{port}")
        }
        Err(_) => return Err(bad()),
    };
    addr.parse().map_err(|_| bad())
}

/// The genesis of the network the peer at `addr` belongs to, and the
/// peer's address with its `/p2p/<peer id>` (what a bootstrap needs).
pub async fn fetch_genesis(addr: &Multiaddr, timeout: Duration) -> Result<(Genesis, Multiaddr), JoinError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| JoinError::Net(e.to_string()))?;
    let cfg = NetConfig {
        request_timeout: timeout,
        ..NetConfig::default()
    };
    let mut swarm = build_swarm(&NodeKey::from_seed(seed), &cfg).map_err(|e| JoinError::Net(e.to_string()))?;
    let unreachable = |why: String| JoinError::Unreachable {
        addr: addr.clone(),
        why,
    };
    swarm.dial(addr.clone()).map_err(|e| unreachable(e.to_string()))?;
    let work = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm
                        .behaviour_mut()
                        .ledger
                        .send_request(&peer_id, LedgerRequest::Genesis.into());
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(unreachable(error.to_string())),
                SwarmEvent::Behaviour(BehaviourEvent::Ledger(ev)) => {
                    use sharegrid_net::request_response::{Event, Message};
                    match ev {
                        Event::Message {
                            peer,
                            message: Message::Response { response, .. },
                            ..
                        } => {
                            let with_peer = addr.clone().with_p2p(peer).map_err(|a| JoinError::NoGenesis {
                                addr: a,
                                why: "its address names another peer".into(),
                            })?;
                            return match response {
                                LedgerResponse::Genesis(g) => Ok((*g, with_peer)),
                                LedgerResponse::Refused { reason } => Err(JoinError::NoGenesis {
                                    addr: addr.clone(),
                                    why: reason,
                                }),
                                other => Err(JoinError::NoGenesis {
                                    addr: addr.clone(),
                                    why: format!("it answered {other:?}"),
                                }),
                            };
                        }
                        Event::OutboundFailure { error, .. } => {
                            return Err(JoinError::NoGenesis {
                                addr: addr.clone(),
                                why: error.to_string(),
                            });
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", timeout.as_secs())))?
}

/// Checks `genesis` against the hash the user expects, if they gave one
/// (a unique prefix of the hex is enough).
pub fn check_genesis(genesis: &Genesis, addr: &Multiaddr, expected: Option<&str>) -> Result<(), JoinError> {
    let Some(expected) = expected else { return Ok(()) };
    let got = genesis.hash().to_string();
    let want = expected.trim().to_ascii_lowercase();
    if want.len() >= 8 && got.starts_with(&want) {
        return Ok(());
    }
    Err(JoinError::WrongNetwork {
        addr: addr.clone(),
        got,
        expected: expected.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_addresses_parse_as_multiaddrs_or_host_port() {
        let a = |s: &str| parse_join_address(s).map(|m| m.to_string());
        assert_eq!(a("127.0.0.1:4001").unwrap(), "/ip4/127.0.0.1/tcp/4001");
        assert_eq!(a("[::1]:4001").unwrap(), "/ip6/::1/tcp/4001");
        assert_eq!(a("node.example:4001").unwrap(), "/dns/node.example/tcp/4001");
        assert_eq!(a("/ip4/10.0.0.2/tcp/4002").unwrap(), "/ip4/10.0.0.2/tcp/4002");
        for bad in ["", "4001", "127.0.0.1", "127.0.0.1:x", "/nope", "a b:1"] {
            assert!(parse_join_address(bad).is_err(), "{bad}");
        }
    }
}
