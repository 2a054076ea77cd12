//! Lanes: OS threads that each run a current-thread Tokio runtime. A connection is opened on
//! a lane and the workers that use it run on the same lane, so a call and its answer never
//! wake another thread (a multi-threaded runtime moves tasks between its workers and wakes
//! parked ones through the kernel on most calls), while two lanes still keep the load
//! generator going when one of its threads is descheduled on a busy machine.
//!
//! Without lanes ([`install`] not called, or with 0 lanes) everything runs on the caller's
//! runtime, as before.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

static LANES: OnceLock<Vec<Handle>> = OnceLock::new();

/// Starts `count` lanes for the rest of the process (a second call changes nothing). Their
/// threads are daemons: they end with the process.
pub fn install(count: usize) -> std::io::Result<()> {
    if count == 0 || LANES.get().is_some() {
        return Ok(());
    }
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        handles.push(runtime.handle().clone());
        std::thread::Builder::new().name(format!("lane-{i}")).spawn(move || {
            // Drives the lane's tasks for as long as the process lives.
            runtime.block_on(std::future::pending::<()>());
        })?;
    }
    let _ = LANES.set(handles);
    Ok(())
}

/// How many lanes there are (0: none, tasks run on the caller's runtime).
pub fn count() -> usize {
    LANES.get().map_or(0, Vec::len)
}

/// Runs `task` on lane `slot % count()`, or on the current runtime when there are no lanes.
pub fn spawn<F>(slot: usize, task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match LANES.get().filter(|l| !l.is_empty()) {
        Some(lanes) => lanes[slot % lanes.len()].spawn(task),
        None => tokio::spawn(task),
    }
}

/// The runtime handle of lane `slot % count()`, or `fallback` when there are no lanes.
pub fn handle(slot: usize, fallback: &Handle) -> Handle {
    match LANES.get().filter(|l| !l.is_empty()) {
        Some(lanes) => lanes[slot % lanes.len()].clone(),
        None => fallback.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_their_lane_and_answer() {
        install(2).unwrap();
        assert_eq!(count(), 2);
        let name = |slot| spawn(slot, async { std::thread::current().name().map(str::to_owned) });
        assert_eq!(name(0).await.unwrap().as_deref(), Some("lane-0"));
        assert_eq!(name(3).await.unwrap().as_deref(), Some("lane-1"));
        // Installing again keeps the lanes there are.
        install(5).unwrap();
        assert_eq!(count(), 2);
    }
}
