//! Ordered shutdown: one stop signal, a cancellation token every loop of the
//! node selects on, and a task tracker the node waits on, so that stopping
//! returns only once every loop (the daemon, the job drivers, the payment
//! task, the control API) has finished. Tests wait for that, not for time.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A node's stop signal and the tasks that must end before it has stopped.
/// Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Lifecycle {
    /// A fresh lifecycle: running, no tasks.
    pub fn new() -> Self {
        Lifecycle::default()
    }

    /// Spawns `task` on the current runtime as one of the node's tasks. The
    /// task must end soon after [`Lifecycle::stopping`] resolves; stopping
    /// waits for it.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Detached: the tracker, not the handle, is how its end is awaited.
        drop(self.tracker.spawn(task));
    }

    /// Resolves once the node is stopping.
    pub async fn stopping(&self) {
        self.token.cancelled().await
    }

    /// Whether the node is stopping (or stopped).
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Signals every task to stop.
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Signals every task to stop and waits until all have ended.
    pub async fn stop_and_wait(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_waits_for_every_task_to_end() {
        let life = Lifecycle::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        for i in 0..3 {
            let (l, tx) = (life.clone(), tx.clone());
            life.spawn(async move {
                l.stopping().await;
                // Work after the signal still finishes before stop returns.
                tokio::task::yield_now().await;
                let _ = tx.send(i).await;
            });
        }
        drop(tx);
        assert!(!life.is_stopping());
        life.stop_and_wait().await;
        let mut ended = Vec::new();
        while let Some(i) = rx.recv().await {
            ended.push(i);
        }
        ended.sort();
        assert_eq!(ended, vec![0, 1, 2]);
    }
}
