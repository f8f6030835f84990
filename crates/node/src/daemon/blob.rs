//! The blob protocol (`/sharegrid/blob/1`): serving chunks of the blobs and
//! outputs this node holds (read off the loop), and fetching blobs in
//! chunks with [`BlobFetch`], which releases the bytes only once they hash
//! to the id asked for. A fetched input goes into the provider's store and
//! its run is told; a caller's fetch is answered with the bytes.

use std::collections::VecDeque;

use sharegrid_core::ContentId;
use sharegrid_net::{
    BlobFetch, BlobRequest, BlobResponse, FetchError, FetchStep, Incoming, Misbehaviour, PeerId, request_response,
};

use super::{Daemon, FetchFailure, FetchOwner, Fetching, Internal, now_ms};
use crate::blobs::BlobStore;
use crate::provider::AgentInput;

/// Fetches from one peer at once, at most: a connection carries only so
/// many streams (yamux refuses more: "max sub-streams reached"), and a
/// task may name thousands of input files.
pub(super) const MAX_FETCHES_PER_PEER: usize = 32;

/// The fetches from one peer.
#[derive(Default)]
pub(super) struct PeerFetches {
    running: usize,
    queued: VecDeque<(ContentId, u64, FetchOwner)>,
}

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
                if let Some(f) = self.fetches.remove(&request_id) {
                    self.on_chunk(f, response);
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let failure = self.outbound_failed("blob", peer, &error);
                if let Some(f) = self.fetches.remove(&request_id) {
                    self.drop_part(&f);
                    self.fetch_over(f.peer);
                    self.fetched(f.owner, Err(FetchFailure::Request(failure)));
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
        let turn = self.peer_fetches.entry(peer).or_default();
        if turn.running >= MAX_FETCHES_PER_PEER {
            turn.queued.push_back((id, max, owner));
            return;
        }
        turn.running += 1;
        // A run's input goes to disk chunk by chunk; a caller's blob (a
        // result it reads) is gathered in memory.
        let fetch = match owner {
            FetchOwner::Run(_) => BlobFetch::to_disk(id, max),
            FetchOwner::Client(_) => BlobFetch::new(id, max),
        };
        self.next_fetch += 1;
        let first = fetch.first();
        let f = Fetching {
            peer,
            fetch,
            owner,
            number: self.next_fetch,
        };
        self.next_chunk(f, first);
    }

    /// A fetch from `peer` is over (its last chunk arrived, or it failed):
    /// the next one waiting for that peer starts.
    pub(super) fn fetch_over(&mut self, peer: PeerId) {
        let Some(turn) = self.peer_fetches.get_mut(&peer) else {
            return;
        };
        turn.running = turn.running.saturating_sub(1);
        match turn.queued.pop_front() {
            Some((id, max, owner)) => self.fetch(peer, id, max, owner),
            None if turn.running == 0 => {
                self.peer_fetches.remove(&peer);
            }
            None => {}
        }
    }

    /// Asks for a fetch's next chunk.
    pub(super) fn next_chunk(&mut self, f: Fetching, req: BlobRequest) {
        let id = self.swarm.behaviour_mut().blob.send_request(&f.peer, req.into());
        self.fetches.insert(id, f);
    }

    fn on_chunk(&mut self, mut f: Fetching, response: BlobResponse) {
        match f.fetch.on_response(response) {
            Ok(FetchStep::Next(req)) => self.next_chunk(f, req),
            Ok(FetchStep::Done(bytes)) => {
                self.fetch_over(f.peer);
                self.fetched(f.owner, Ok(bytes));
            }
            Ok(FetchStep::Write {
                offset,
                data,
                total,
                next,
            }) => {
                if next.is_none() {
                    // All of it arrived: the peer's turn goes to the next fetch.
                    self.fetch_over(f.peer);
                }
                let FetchOwner::Run(run) = f.owner else { return };
                let Some(part) = &self.agent else { return };
                let store = part.provider_blobs().clone();
                // Written off the loop; the next chunk is asked for once this
                // one is on disk, so a fetch holds one chunk in memory.
                self.blocking(move || {
                    let (id, n) = (f.fetch.id(), f.number);
                    let written = store.write_part(&id, n, offset, &data);
                    let failed = |e: crate::blobs::BlobError| {
                        store.remove_part(&id, n);
                        let why = format!("provider cannot store an input: {e}");
                        AgentInput::BlobFailed { run, why }
                    };
                    match (written, next) {
                        (Err(e), Some(_)) => Internal::ChunkWritten(Box::new(f), Err(failed(e))),
                        (Err(e), None) => Internal::Agent(failed(e)),
                        (Ok(()), Some(next)) => Internal::ChunkWritten(Box::new(f), Ok(next)),
                        (Ok(()), None) => match store.commit_part(&id, n, total) {
                            Ok(()) => Internal::Agent(AgentInput::BlobReady { run }),
                            Err(e) => Internal::Agent(failed(e)),
                        },
                    }
                });
            }
            Err(e) => {
                if e.is_misbehaviour() {
                    let what = match e {
                        FetchError::TooLarge { .. } => Misbehaviour::Oversized,
                        _ => Misbehaviour::BadBlob,
                    };
                    self.misbehaved(f.peer, what, format!("blob: {e}"));
                }
                self.drop_part(&f);
                self.fetch_over(f.peer);
                self.fetched(f.owner, Err(FetchFailure::Bad(e)));
            }
        }
    }

    /// Deletes the part a failed fetch to disk left.
    fn drop_part(&self, f: &Fetching) {
        if let (FetchOwner::Run(_), Some(part)) = (&f.owner, &self.agent) {
            let (store, id, n) = (part.provider_blobs().clone(), f.fetch.id(), f.number);
            tokio::task::spawn_blocking(move || store.remove_part(&id, n));
        }
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
        // A validator re-running a task under judgement gets its program's
        // blobs from whoever holds them: the requestor's own, or the inputs
        // a provider fetched to run it. Asked only when no output or grant
        // serves the request, so the chain's lock stays off that path.
        let judged = outputs.is_none() && !granted && self.judges(&peer, &request.id);
        let blobs = (granted || judged).then(|| self.blobs.clone());
        let inputs = judged
            .then(|| self.agent.as_ref().map(|a| a.provider_blobs().clone()))
            .flatten();
        self.blocking(move || {
            let len = request.len.min(sharegrid_net::MAX_CHUNK_BYTES);
            let read = |s: &BlobStore| s.read_chunk(&request.id, request.offset, len).ok().flatten();
            let found = outputs
                .as_ref()
                .and_then(read)
                .or_else(|| blobs.as_ref().and_then(read))
                .or_else(|| inputs.as_ref().and_then(read));
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

    /// Whether `peer` is a validator and blob `id` belongs to a task the
    /// ledger has under judgement.
    fn judges(&self, peer: &PeerId, id: &ContentId) -> bool {
        let (Some(l), Some(who)) = (self.ledger.as_ref(), sharegrid_net::node_id(peer)) else {
            return false;
        };
        l.ledger
            .with_state(|s| s.validators.contains(&who) && s.judges_blob(id))
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
