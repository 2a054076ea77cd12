//! The machinery the reserve and check batchers share: a queue of calls in front of one
//! dispatcher task, which starts a batch whenever a worker is free and the policy finds one
//! that may start, and hands each caller its own answer.

use std::collections::VecDeque;
use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// One queued call and where its answer goes.
pub(super) struct Job<Req, Ans> {
    pub(super) req: Req,
    pub(super) reply: oneshot::Sender<Ans>,
}

impl<Req, Ans> Job<Req, Ans> {
    /// Whether the caller gave up (deadline, disconnect): its call needs no work.
    pub(super) fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Answers the caller, if it still waits.
    pub(super) fn answer(self, answer: Ans) {
        let _ = self.reply.send(answer);
    }
}

/// What a batcher decides: which queued calls form the next batch, and how a batch runs.
pub(super) trait Policy: Send + 'static {
    type Req: Send + 'static;
    type Ans: Send + 'static;
    /// What a batch in flight keeps from others (e.g. its items) until it ends.
    type Claim: Send + 'static;

    /// The next batch from `pending` (in arrival order; calls left there wait), or `None`
    /// when nothing may start now.
    #[allow(clippy::type_complexity)]
    fn take(
        &mut self,
        pending: &mut VecDeque<Job<Self::Req, Self::Ans>>,
    ) -> Option<(Vec<Job<Self::Req, Self::Ans>>, Self::Claim)>;

    /// Gives back what a finished batch claimed.
    fn release(&mut self, claim: Self::Claim);

    /// Runs a batch and answers each of its callers.
    fn run(
        &self,
        batch: Vec<Job<Self::Req, Self::Ans>>,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// The handle callers queue on. Dropping the last one lets the dispatcher finish what is
/// queued and stop.
pub(super) struct Queue<Req, Ans> {
    tx: mpsc::Sender<Job<Req, Ans>>,
}

impl<Req, Ans> std::fmt::Debug for Queue<Req, Ans> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("capacity", &self.tx.capacity()).finish()
    }
}

impl<Req: Send + 'static, Ans: Send + 'static> Queue<Req, Ans> {
    /// Spawns the dispatcher (inside a Tokio runtime): at most `workers` batches in flight,
    /// at most `capacity` calls queued (callers beyond it wait to queue).
    pub(super) fn start<P>(policy: P, workers: usize, capacity: usize) -> Self
    where
        P: Policy<Req = Req, Ans = Ans>,
    {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(dispatch(policy, rx, workers.max(1)));
        Self { tx }
    }

    /// Queues `req` and waits for its answer; `None` when the dispatcher has stopped.
    pub(super) async fn submit(&self, req: Req) -> Option<Ans> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { req, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Forms batches from what is queued and runs them, until the queue is closed, empty and
/// nothing is in flight.
async fn dispatch<P: Policy>(
    mut policy: P,
    mut rx: mpsc::Receiver<Job<P::Req, P::Ans>>,
    workers: usize,
) {
    let mut pending = VecDeque::new();
    let mut in_flight = 0_usize;
    let mut open = true;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<P::Claim>();
    loop {
        tokio::select! {
            biased;
            Some(claim) = done_rx.recv() => {
                in_flight -= 1;
                policy.release(claim);
            }
            job = rx.recv(), if open => match job {
                Some(job) => pending.push_back(job),
                None => open = false,
            },
        }
        while let Ok(job) = rx.try_recv() {
            pending.push_back(job);
        }
        while in_flight < workers {
            let Some((batch, claim)) = policy.take(&mut pending) else { break };
            in_flight += 1;
            let run = policy.run(batch);
            let done = done_tx.clone();
            tokio::spawn(async move {
                run.await;
                let _ = done.send(claim);
            });
        }
        if !open && pending.is_empty() && in_flight == 0 {
            return;
        }
    }
}
