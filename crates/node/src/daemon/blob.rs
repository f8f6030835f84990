//! The blob protocol (`/sharegrid/blob/1`): serving chunks of the blobs and
//! outputs this node holds (read off the loop), and fetching blobs in
//! chunks with [`BlobFetch`], which releases the bytes only once they hash
//! to the id asked for. A fetched input goes into the provider's store and
//! its run is told; a caller's fetch is answered with the bytes.

use sharegrid_core::ContentId;
use sharegrid_net::{
    BlobFetch, BlobRequest, BlobResponse, FetchError, FetchStep, Incoming, Misbehaviour, PeerId, request_response,
};

use super::{Daemon, FetchFailure, FetchOwner, Internal, now_ms};
use crate::blobs::BlobStore;
use crate::provider::AgentInput;

impl Daemon {
    pub(super) fn on_blob(&mut self, ev: request_response::Event<Incoming<BlobRequest>, BlobResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message: Message::Request { request, channel, .. },
                ..
            } => match request {
                Incoming::Request(_) if !self.within_rate(peer, sharegrid_net::Protocol::Blob) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blob
                        .send_response(channel, BlobResponse::NotFound);
                }
                Incoming::Request(r) => self.serve_blob(peer, r, channel),
                Incoming::Refused(e) => {
                    self.misbehaved(peer, Misbehaviour::of_wire(&e), format!("blob request: {e}"));
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .blob
                        .send_response(channel, BlobResponse::NotFound);
                }
            },
            Event::Message {
                message: Message::Response { request_id, response },
                ..
            } => {
                let Some((peer, mut fetch, owner)) = self.fetches.remove(&request_id) else {
                    return;
                };
                match fetch.on_response(response) {
                    Ok(FetchStep::Next(req)) => {
                        let id = self.swarm.behaviour_mut().blob.send_request(&peer, req.into());
                        self.fetches.insert(id, (peer, fetch, owner));
                    }
                    Ok(FetchStep::Done(bytes)) => self.fetched(owner, Ok(bytes)),
                    Err(e) => {
                        if e.is_misbehaviour() {
                            let what = match e {
                                FetchError::TooLarge { .. } => Misbehaviour::Oversized,
                                _ => Misbehaviour::BadBlob,
                            };
                            self.misbehaved(peer, what, format!("blob: {e}"));
                        }
                        self.fetched(owner, Err(FetchFailure::Bad(e)));
                    }
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let failure = self.outbound_failed("blob", peer, &error);
                if let Some((_, _, owner)) = self.fetches.remove(&request_id) {
                    self.fetched(owner, Err(FetchFailure::Request(failure)));
                }
            }
            Event::InboundFailure { peer, error, .. } => self.inbound_failure(peer, "blob", error),
            Event::ResponseSent { .. } => {}
        }
    }

    /// Starts fetching blob `id` (at most `max` bytes) from `peer` for `owner`.
    /// From this node itself (its own provider's output, for its own
    /// requestor) it is read from the stores, without the network.
    pub(super) fn fetch(&mut self, peer: PeerId, id: ContentId, max: u64, owner: FetchOwner) {
        if peer == *self.swarm.local_peer_id() {
            return self.fetch_local(id, max, owner);
        }
        let f = BlobFetch::new(id, max);
        let req = self.swarm.behaviour_mut().blob.send_request(&peer, f.first().into());
        self.fetches.insert(req, (peer, f, owner));
    }

    fn fetch_local(&mut self, id: ContentId, max: u64, owner: FetchOwner) {
        let outputs = self.agent.as_ref().map(|a| a.outputs().clone());
        let blobs = self.blobs.clone();
        self.blocking(move || {
            let read = |s: &BlobStore| s.get(&id).ok().flatten();
            let (found, output) = match outputs.as_ref().and_then(read) {
                Some(b) => (Some(b), true),
                None => (read(&blobs), false),
            };
            let result = match found {
                None => Err(FetchFailure::Bad(FetchError::NotFound(id))),
                Some(b) if b.len() as u64 > max => Err(FetchFailure::Bad(FetchError::TooLarge {
                    total: b.len() as u64,
                    max,
                })),
                Some(b) => Ok(b),
            };
            Internal::FetchedLocally {
                owner,
                id,
                output: output && result.is_ok(),
                result,
            }
        });
    }

    /// A local fetch ended: as a peer's would, an output goes once its
    /// requestor (this node) has it.
    pub(super) fn fetched_locally(
        &mut self,
        owner: FetchOwner,
        id: ContentId,
        output: bool,
        result: Result<Vec<u8>, FetchFailure>,
    ) {
        self.fetched(owner, result);
        if output {
            let peer = *self.swarm.local_peer_id();
            self.agent_input(AgentInput::OutputFetched { peer, output: id }, None);
        }
    }

    fn serve_blob(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: request_response::ResponseChannel<BlobResponse>,
    ) {
        // Only to the parties of an assignment: an output to the requestor
        // it is kept for, one of our blobs to a provider we assigned work
        // naming it. Anyone else hears "not found", as for a blob we lack.
        let outputs = self
            .agent
            .as_ref()
            .filter(|a| a.agent.keeps_output_for(&request.id, &peer))
            .map(|a| a.outputs().clone());
        let granted = self
            .grants
            .get(&(peer, request.id))
            .is_some_and(|&until| until > now_ms());
        let blobs = granted.then(|| self.blobs.clone());
        self.blocking(move || {
            let len = request.len.min(sharegrid_net::MAX_CHUNK_BYTES);
            let read = |s: &BlobStore| s.read_chunk(&request.id, request.offset, len).ok().flatten();
            let found = outputs
                .as_ref()
                .and_then(read)
                .or_else(|| blobs.as_ref().and_then(read));
            let (response, complete) = match found {
                Some((data, total)) => {
                    let complete = request.offset + data.len() as u64 >= total;
                    (BlobResponse::Chunk { data, total }, complete)
                }
                None => (BlobResponse::NotFound, false),
            };
            Internal::BlobServed {
                channel,
                response,
                peer,
                id: request.id,
                complete,
            }
        });
    }

    pub(super) fn blob_served(
        &mut self,
        channel: request_response::ResponseChannel<BlobResponse>,
        response: BlobResponse,
        peer: PeerId,
        id: ContentId,
        complete: bool,
    ) {
        let _ = self.swarm.behaviour_mut().blob.send_response(channel, response);
        // Outputs go once their requestor has all of them.
        if complete {
            self.agent_input(AgentInput::OutputFetched { peer, output: id }, None);
        }
    }

    fn fetched(&mut self, owner: FetchOwner, result: Result<Vec<u8>, FetchFailure>) {
        match owner {
            FetchOwner::Client(reply) => {
                let _ = reply.send(result);
            }
            FetchOwner::Run(run) => match result {
                Err(e) => {
                    let why = format!("could not fetch an input from the requestor: {e}");
                    self.agent_input(AgentInput::BlobFailed { run, why }, None);
                }
                Ok(bytes) => {
                    let Some(part) = &self.agent else { return };
                    let store = part.provider_blobs().clone();
                    self.blocking(move || {
                        let input = match store.put(&bytes) {
                            Ok(_) => AgentInput::BlobReady { run },
                            Err(e) => AgentInput::BlobFailed {
                                run,
                                why: format!("provider cannot store an input: {e}"),
                            },
                        };
                        Internal::Agent(input)
                    });
                }
            },
        }
    }
}
