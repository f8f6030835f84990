//! Live updates as server-sent events (`GET /api/events`): jobs' tasks
//! ending, jobs waiting, ending and settled, new blocks, new offers. Each event's
//! name is its `type`; its data is the JSON of [`ApiEvent`]. A client
//! that falls behind misses events rather than slowing the node: it reads
//! the state again from the other endpoints.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use sharegrid_core::{JobId, Offer, TaskId};
use tokio::sync::{broadcast, watch};
use utoipa::ToSchema;

use super::Http;
use crate::daemon::NodeEvent;
use crate::job::{JobEvent, State as JobState};
use crate::payment::{PaymentEvent, Payments};

/// One live event.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiEvent {
    /// A task of a job ended: accepted, or failed.
    Task {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Whether its result was accepted.
        accepted: bool,
    },
    /// A job lacks providers and waits for them.
    Waiting {
        /// The job.
        job: JobId,
        /// For what.
        why: String,
        /// How many tasks wait.
        tasks: usize,
    },
    /// A job ended.
    Ended {
        /// The job.
        job: JobId,
        /// Done or failed.
        state: JobState,
    },
    /// A job's settlement landed: its agreeing receipts paid, its escrow
    /// closed and the rest refunded.
    Settled {
        /// The job.
        job: JobId,
    },
    /// A job's settlement was refused.
    SettleFailed {
        /// The job.
        job: JobId,
        /// Why.
        why: String,
        /// Whether it is tried again now (else at the node's next start).
        retrying: bool,
    },
    /// A new block on this node's copy of the ledger.
    Block {
        /// Its height.
        height: u64,
    },
    /// A provider's new or updated offer.
    Offer {
        /// The offer.
        offer: Box<Offer>,
    },
}

impl ApiEvent {
    fn name(&self) -> &'static str {
        match self {
            ApiEvent::Task { .. } => "task",
            ApiEvent::Waiting { .. } => "waiting",
            ApiEvent::Ended { .. } => "ended",
            ApiEvent::Settled { .. } => "settled",
            ApiEvent::SettleFailed { .. } => "settle_failed",
            ApiEvent::Block { .. } => "block",
            ApiEvent::Offer { .. } => "offer",
        }
    }
}

struct Sources {
    jobs: broadcast::Receiver<JobEvent>,
    node: broadcast::Receiver<NodeEvent>,
    heads: Option<watch::Receiver<u64>>,
    payments: Option<broadcast::Receiver<PaymentEvent>>,
}

impl Sources {
    /// The next event, or `None` when the node stops.
    async fn next(&mut self) -> Option<ApiEvent> {
        loop {
            let head = async {
                match &mut self.heads {
                    Some(h) => h.changed().await.map(|()| *h.borrow_and_update()),
                    None => std::future::pending().await,
                }
            };
            let paid = async {
                match &mut self.payments {
                    Some(p) => p.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                e = self.jobs.recv() => match e {
                    Ok(JobEvent::TaskEnded { job, task, accepted }) => return Some(ApiEvent::Task { job, task, accepted }),
                    Ok(JobEvent::Waiting { job, waiting }) => {
                        return Some(ApiEvent::Waiting { job, why: waiting.why, tasks: waiting.tasks });
                    }
                    Ok(JobEvent::Ended { job, state }) => return Some(ApiEvent::Ended { job, state }),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                e = self.node.recv() => match e {
                    Ok(NodeEvent::OfferSeen(offer)) => return Some(ApiEvent::Offer { offer }),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                e = paid => match e {
                    Ok(PaymentEvent::Settled { job }) => return Some(ApiEvent::Settled { job }),
                    Ok(PaymentEvent::SettleFailed { job, why, retrying }) => {
                        return Some(ApiEvent::SettleFailed { job, why, retrying });
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.payments = None,
                },
                h = head => match h {
                    Ok(height) => return Some(ApiEvent::Block { height }),
                    Err(_) => self.heads = None,
                },
            }
        }
    }
}

#[utoipa::path(get, path = "/api/events", tag = "node",
    responses((status = 200, description = "Server-sent events: each event's name is its `type`, its data the JSON \
        of an ApiEvent. A comment line keeps the connection alive every 15 s.",
        content_type = "text/event-stream", body = ApiEvent)))]
pub(super) async fn events(State(s): State<Http>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sources = Sources {
        jobs: s.requestor.subscribe(),
        node: s.node.subscribe(),
        heads: s.requestor.payments().map(|p| p.ledger().subscribe()),
        payments: s.requestor.payments().map(Payments::subscribe),
    };
    let life = s.node.lifecycle().clone();
    let stream = futures::stream::unfold((sources, life), |(mut src, life)| async move {
        let ev = tokio::select! {
            e = src.next() => e?,
            () = life.stopping() => return None,
        };
        let event = Event::default()
            .event(ev.name())
            .json_data(&ev)
            .unwrap_or_else(|_| Event::default().comment("unencodable event"));
        Some((Ok(event), (src, life)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
