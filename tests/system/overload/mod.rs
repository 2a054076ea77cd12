//! Overload protection, end to end: the concurrency limit sheds excess calls at once while
//! health keeps answering, deadlines end calls (and roll back their writes), and message-size
//! and items-per-request limits refuse what is too large.

mod deadlines;
mod limits;
mod shedding;

use std::time::Duration;

/// Generous bound for "answered at once": the calls it is compared with are held for
/// several seconds.
const FAST: Duration = Duration::from_secs(2);
