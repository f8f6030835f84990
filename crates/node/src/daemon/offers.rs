//! Gossip: offers in (judged by the [`sharegrid_net::OfferBook`], valid ones
//! forwarded, bad ones counted against the peer that relayed them), our
//! provider's signed offers out, and block headers handed to the ledger's
//! follower.

use sharegrid_core::{Signed, encode};
use sharegrid_net::{BLOCKS_TOPIC, Misbehaviour, OFFERS_TOPIC, OfferRejection, PeerId, gossipsub};

use super::{Daemon, NodeEvent, now_ms};

impl Daemon {
    pub(super) fn on_gossip(&mut self, ev: gossipsub::Event) {
        if let gossipsub::Event::Subscribed { topic, .. } = &ev {
            if *topic == gossipsub::IdentTopic::new(OFFERS_TOPIC).hash() {
                self.agent_input(crate::provider::AgentInput::PeerListening, None);
            }
            return;
        }
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = ev
        else {
            return;
        };
        let verdict = if message.topic == gossipsub::IdentTopic::new(BLOCKS_TOPIC).hash() {
            let producer = message.source.unwrap_or(propagation_source);
            self.on_block_announced(propagation_source, producer, &message.data)
        } else {
            self.on_offer(propagation_source, &message)
        };
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
            &message_id,
            &propagation_source,
            verdict,
        );
    }

    fn on_offer(&mut self, from: PeerId, message: &gossipsub::Message) -> gossipsub::MessageAcceptance {
        match self.book.accept(&message.data, message.source, now_ms()) {
            Ok(offer) => {
                self.emit(NodeEvent::OfferSeen(Box::new(offer)));
                gossipsub::MessageAcceptance::Accept
            }
            Err(rejection) if rejection.is_misbehaviour() => {
                let what = match &rejection {
                    OfferRejection::Invalid(e) => Misbehaviour::of_wire(e),
                    OfferRejection::Implausible(_) => Misbehaviour::Malformed,
                    _ => Misbehaviour::BadSignature,
                };
                self.misbehaved(from, what, rejection.to_string());
                gossipsub::MessageAcceptance::Reject
            }
            Err(rejection) => {
                tracing::debug!(%from, "offer ignored: {rejection}");
                gossipsub::MessageAcceptance::Ignore
            }
        }
    }

    /// Gossips our provider's signed offer; `false` when no peer listens yet.
    pub(super) fn publish_offer(&mut self, offer: &Signed) -> bool {
        let bytes = match encode(offer) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the offer");
                return false;
            }
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(OFFERS_TOPIC), bytes)
        {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "offer not published");
                false
            }
        }
    }
}
