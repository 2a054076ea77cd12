//! `mixed`: 90% availability checks, 10% a hold of 3 random SKUs that is then committed or
//! cancelled (half each). One operation = one check, or one reserve + its commit/cancel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fastrand::Rng;
use proto::inventory::v1 as pb;

use super::Workload;
use super::check;
use super::reserve::{self, Pick, References};
use crate::conn::{Channels, with_deadline};
use crate::histogram::Outcome;

/// Share of checks, in percent.
pub const CHECK_PERCENT: u32 = 90;

/// The mixed workload.
#[derive(Debug, Clone)]
pub struct Mixed {
    pub inventory: Channels,
    pub nskus: u32,
    pub references: Arc<References>,
    pub deadline: Duration,
}

/// What one mixed operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Check,
    ReserveCommit,
    ReserveCancel,
}

/// Draws the next step: 90% check, 5% reserve + commit, 5% reserve + cancel.
pub fn step(rng: &mut Rng) -> Step {
    let roll = rng.u32(0..100);
    if roll < CHECK_PERCENT {
        Step::Check
    } else if roll < CHECK_PERCENT + (100 - CHECK_PERCENT) / 2 {
        Step::ReserveCommit
    } else {
        Step::ReserveCancel
    }
}

async fn settle(
    mut client: pb::inventory_service_client::InventoryServiceClient<crate::conn::Conn>,
    req: pb::ReserveInventoryRequest,
    commit: bool,
    deadline: Duration,
) -> Outcome {
    let id = match reserve::send(&mut client, req, deadline).await {
        Ok(Some(id)) => id,
        Ok(None) => return Outcome::Error("unexpected refusal (stock should be plenty)".into()),
        Err(status) => return Outcome::grpc(&status),
    };
    let answer = if commit {
        let req = pb::CommitReservationRequest { reservation_id: id };
        client.commit_reservation(with_deadline(req, deadline)).await
    } else {
        let req = pb::CancelReservationRequest::by_id(id);
        client.cancel_reservation(with_deadline(req, deadline)).await
    };
    match answer {
        Ok(resp) if resp.get_ref().success => Outcome::Ok,
        Ok(_) => Outcome::Error(format!("{} refused", if commit { "commit" } else { "cancel" })),
        Err(status) => Outcome::grpc(&status),
    }
}

impl Workload for Mixed {
    fn call(&self, slot: usize, rng: &mut Rng) -> impl Future<Output = Outcome> + Send + 'static {
        let client = self.inventory.inventory(slot);
        let deadline = self.deadline;
        let step = step(rng);
        let check_req = check::request(rng, self.nskus);
        let reserve_req = match step {
            Step::Check => None,
            Step::ReserveCommit | Step::ReserveCancel => Some(reserve::request(
                self.references.next(),
                &reserve::lines(rng, self.nskus, Pick::Uniform),
            )),
        };
        async move {
            match reserve_req {
                None => check::send(client, check_req, deadline).await,
                Some(req) => settle(client, req, step == Step::ReserveCommit, deadline).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_ninety_five_five() {
        let mut rng = Rng::with_seed(3);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[step(&mut rng) as usize] += 1;
        }
        assert!((89_000..91_000).contains(&counts[0]), "{counts:?}");
        assert!((4_500..5_500).contains(&counts[1]), "{counts:?}");
        assert!((4_500..5_500).contains(&counts[2]), "{counts:?}");
    }
}
