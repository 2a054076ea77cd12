//! WatchEvents: a stream per watcher that sends every event after its position, in order,
//! then follows the head the relay publishes. Bounded: a cap on watchers, a queue of
//! `EVENTS_BUFFER` events per watcher (beyond what HTTP/2 flow control holds), and a
//! consumer whose queue stays full for the slow-consumer timeout is ended, to resume from
//! its last position.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use proto::events::v1 as pb;
use proto::status::{CallError, Details, FieldViolation};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use super::payload::PayloadError;
use super::{EventLog, EventMetrics, EventSettings, Head, to_event};
use crate::db::DbError;

/// Most types one request may name.
const MAX_TYPES: usize = 32;

/// What a watcher asked for.
#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    /// The last position the consumer handled.
    pub from_position: u64,
    /// Only these types (empty: all).
    pub types: Vec<String>,
    /// Start after the newest event instead.
    pub from_now: bool,
}

/// Why a watch was refused or ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A requested type is not one this service writes.
    #[error(
        "invalid argument: types[{index}]: {value:?} is not an event type of this service (known: {known})"
    )]
    UnknownType {
        /// Its index in the request.
        index: usize,
        /// What was asked.
        value: String,
        /// The known types, comma-separated.
        known: String,
    },
    /// More types than [`MAX_TYPES`].
    #[error("invalid argument: types: at most {MAX_TYPES} types, got {0}")]
    TooManyTypes(usize),
    /// Every watcher slot is taken.
    #[error(
        "{0} event watchers are open on this server (EVENTS_MAX_WATCHERS); retry later or on another replica"
    )]
    TooManyWatchers(u32),
    /// Retention removed events the consumer has not seen.
    #[error(
        "events through position {removed_through} were removed by retention; the oldest kept position is {oldest}: resume from there (position {removed_through})"
    )]
    Removed {
        /// The last removed position.
        removed_through: u64,
        /// The oldest position still kept.
        oldest: u64,
    },
    /// The position is beyond the log (a log restored from a backup, or another database).
    #[error(
        "from_position {from} is after the newest event {last}: this log never had it (restored or another database?)"
    )]
    Ahead {
        /// What was asked.
        from: u64,
        /// The newest position.
        last: u64,
    },
    /// The consumer did not read for the slow-consumer timeout.
    #[error(
        "consumer too slow: its queue stayed full for {timeout_ms} ms; resume after position {resume_after}"
    )]
    TooSlow {
        /// The last position sent.
        resume_after: u64,
        /// EVENTS_SLOW_CONSUMER_TIMEOUT_MS.
        timeout_ms: u128,
    },
    /// The server is stopping.
    #[error("server shutting down; resume after position {resume_after} on another replica")]
    ShuttingDown {
        /// The last position sent.
        resume_after: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A stored payload is not its type's (a bug).
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl WatchError {
    fn reason(&self) -> &'static str {
        match self {
            Self::TooSlow { .. } => "too_slow",
            Self::Removed { .. } | Self::Ahead { .. } => "out_of_range",
            Self::TooManyWatchers(_) => "too_many_watchers",
            _ => "error",
        }
    }

    /// This error as the caller gets it, with ErrorInfo in `domain`.
    pub fn status(&self, domain: &str) -> Status {
        let details = match self {
            Self::TooManyWatchers(max) => {
                Details::reason("TOO_MANY_WATCHERS", domain, [("max", max.to_string().as_str())])
            }
            Self::Removed { oldest, .. } => Details::reason(
                "EVENTS_REMOVED",
                domain,
                [("oldest_position", oldest.to_string().as_str())],
            ),
            Self::Ahead { last, .. } => Details::reason(
                "POSITION_AHEAD_OF_LOG",
                domain,
                [("last_position", last.to_string().as_str())],
            ),
            Self::TooSlow { resume_after, .. } => Details::reason(
                "CONSUMER_TOO_SLOW",
                domain,
                [("resume_after", resume_after.to_string().as_str())],
            ),
            Self::ShuttingDown { resume_after } => Details::reason(
                "SERVER_SHUTTING_DOWN",
                domain,
                [("resume_after", resume_after.to_string().as_str())],
            ),
            Self::Database(err) => return proto::status::status(err),
            _ => return proto::status::status(self),
        };
        proto::status::status(&Described {
            code: self.code(),
            message: self.public_message(),
            details,
        })
    }
}

impl CallError for WatchError {
    fn code(&self) -> Code {
        match self {
            Self::UnknownType { .. } | Self::TooManyTypes(_) => Code::InvalidArgument,
            Self::TooManyWatchers(_) | Self::TooSlow { .. } => Code::ResourceExhausted,
            Self::Removed { .. } | Self::Ahead { .. } => Code::OutOfRange,
            Self::ShuttingDown { .. } => Code::Unavailable,
            Self::Database(err) => err.code(),
            Self::Payload(_) => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Database(err) => err.public_message(),
            Self::Payload(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Details {
        match self {
            Self::UnknownType { index, .. } => Details::bad_request(&[FieldViolation::new(
                format!("types[{index}]"),
                "not an event type of this service",
            )]),
            Self::TooManyTypes(_) => Details::bad_request(&[FieldViolation::new(
                "types",
                format!("at most {MAX_TYPES} types"),
            )]),
            _ => Details::default(),
        }
    }

    fn log(&self) {
        if let Self::Payload(err) = self {
            tracing::error!(error = %err, "stored event cannot be sent");
        }
    }
}

/// A finished error: code, message and details as computed once.
struct Described {
    code: Code,
    message: String,
    details: Details,
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl CallError for Described {
    fn code(&self) -> Code {
        self.code
    }

    fn details(&self) -> Details {
        self.details.clone()
    }
}

/// The watchers of one server's log.
#[derive(Debug, Clone)]
pub struct Watchers {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: EventLog,
    head: watch::Receiver<Head>,
    slots: Arc<Semaphore>,
    max: u32,
    buffer: usize,
    slow: Duration,
    metrics: EventMetrics,
    types: &'static [&'static str],
    domain: &'static str,
    stop: CancellationToken,
}

impl Watchers {
    /// Watchers of `log`, following the head the relay publishes on `head`; `types` are the
    /// ones this service writes, `domain` the ErrorInfo domain (`inventory.v1`); `stop` ends
    /// every stream (UNAVAILABLE) at shutdown.
    pub fn new(
        log: EventLog,
        settings: &EventSettings,
        metrics: EventMetrics,
        types: &'static [&'static str],
        domain: &'static str,
        head: watch::Receiver<Head>,
        stop: CancellationToken,
    ) -> Self {
        let max = settings.events_max_watchers.max(1);
        Self {
            inner: Arc::new(Inner {
                log,
                head,
                slots: Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(usize::MAX))),
                max,
                buffer: usize::try_from(settings.events_buffer.clamp(1, 65_536)).unwrap_or(256),
                slow: settings.slow_consumer_timeout(),
                metrics,
                types,
                domain,
                stop,
            }),
        }
    }

    /// Opens a stream of the events `request` asks for, each wrapped by `wrap` (the service's
    /// response message). Refused at once: unknown types, no free slot, a position retention
    /// removed or the log never had.
    pub async fn open<T: Send + 'static>(
        &self,
        request: WatchRequest,
        wrap: fn(pb::Event) -> T,
    ) -> Result<EventStream<T>, Status> {
        let inner = &self.inner;
        let refuse = |err: WatchError| {
            inner.metrics.ended.with_label_values(&[err.reason()]).inc();
            err.status(inner.domain)
        };
        let types = check_types(inner.types, request.types).map_err(|e| e.status(inner.domain))?;
        let slot = Arc::clone(&inner.slots)
            .try_acquire_owned()
            .map_err(|_| refuse(WatchError::TooManyWatchers(inner.max)))?;
        let head = inner.log.head().await.map_err(|e| WatchError::from(e).status(inner.domain))?;
        let cursor = if request.from_now {
            head.last_position
        } else if request.from_position < head.removed_through {
            return Err(refuse(WatchError::Removed {
                removed_through: head.removed_through,
                oldest: head.removed_through + 1,
            }));
        } else if request.from_position > head.last_position {
            return Err(refuse(WatchError::Ahead {
                from: request.from_position,
                last: head.last_position,
            }));
        } else {
            request.from_position
        };
        let (tx, rx) = mpsc::channel(inner.buffer);
        let (end_tx, end_rx) = oneshot::channel();
        tokio::spawn(feed(Arc::clone(inner), cursor, types, tx, end_tx, wrap, slot));
        Ok(EventStream { rx, end: Some(end_rx) })
    }
}

/// `types` of a WatchEvents request, checked against the `known` types of the service:
/// INVALID_ARGUMENT naming `types[i]` for one it never writes; duplicates dropped.
pub fn check_types(known: &[&str], types: Vec<String>) -> Result<Vec<String>, WatchError> {
    if types.len() > MAX_TYPES {
        return Err(WatchError::TooManyTypes(types.len()));
    }
    let mut checked: Vec<String> = Vec::with_capacity(types.len());
    for (index, value) in types.into_iter().enumerate() {
        if !known.contains(&value.as_str()) {
            return Err(WatchError::UnknownType { index, value, known: known.join(", ") });
        }
        if !checked.contains(&value) {
            checked.push(value);
        }
    }
    Ok(checked)
}

/// Counts a watcher while it lives.
struct Counted(prometheus::IntGauge);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Reads the log after `cursor` and queues what it finds, until the consumer goes, the
/// queue stays full too long, the database fails or the server stops.
async fn feed<T: Send + 'static>(
    inner: Arc<Inner>,
    mut cursor: u64,
    types: Vec<String>,
    tx: mpsc::Sender<T>,
    end: oneshot::Sender<Status>,
    wrap: fn(pb::Event) -> T,
    _slot: OwnedSemaphorePermit,
) {
    inner.metrics.watchers.inc();
    let _counted = Counted(inner.metrics.watchers.clone());
    let batch = u32::try_from(inner.buffer).unwrap_or(256);
    let mut head_rx = inner.head.clone();
    // Every way the feed ends but the consumer leaving: counted once, told once.
    let failure = 'feed: loop {
        let head = *head_rx.borrow_and_update();
        if head.last_position > cursor {
            let (removed_through, events) =
                match inner.log.read(cursor, head.last_position, &types, batch).await {
                    Ok(read) => read,
                    Err(err) => break WatchError::Database(err),
                };
            if cursor < removed_through {
                break WatchError::Removed { removed_through, oldest: removed_through + 1 };
            }
            let full = events.len() >= inner.buffer;
            if let Some(last) = events.last() {
                inner
                    .metrics
                    .lag
                    .with_label_values::<&str>(&[])
                    .observe(head.last_position.saturating_sub(last.position) as f64);
            }
            for stored in events {
                let event = match to_event(&stored) {
                    Ok(event) => event,
                    Err(err) => break 'feed WatchError::Payload(err),
                };
                match tokio::time::timeout(inner.slow, tx.send(wrap(event))).await {
                    Ok(Ok(())) => cursor = stored.position,
                    // The consumer is gone.
                    Ok(Err(_)) => return,
                    Err(_) => {
                        break 'feed WatchError::TooSlow {
                            resume_after: cursor,
                            timeout_ms: inner.slow.as_millis(),
                        };
                    }
                }
            }
            if !full {
                cursor = cursor.max(head.last_position);
            }
            continue;
        }
        tokio::select! {
            changed = head_rx.changed() => {
                if changed.is_err() {
                    break WatchError::ShuttingDown { resume_after: cursor };
                }
            }
            () = tx.closed() => return,
            () = inner.stop.cancelled() => break WatchError::ShuttingDown { resume_after: cursor },
        }
    };
    inner.metrics.ended.with_label_values(&[failure.reason()]).inc();
    let _ = end.send(failure.status(inner.domain));
}

/// A WatchEvents response stream: the queued events, then the status the feed ended with.
#[derive(Debug)]
pub struct EventStream<T> {
    rx: mpsc::Receiver<T>,
    end: Option<oneshot::Receiver<Status>>,
}

impl<T> Stream for EventStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(item) = ready!(self.rx.poll_recv(cx)) {
            return Poll::Ready(Some(Ok(item)));
        }
        let Some(end) = self.end.as_mut() else { return Poll::Ready(None) };
        let ended = ready!(Pin::new(end).poll(cx));
        self.end = None;
        Poll::Ready(ended.ok().map(Err))
    }
}
