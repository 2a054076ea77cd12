//! The pair's wire types: generated protobuf and gRPC types, one module per package, the
//! encoded descriptor set reflection serves, and the rich error details every server builds
//! the same way. Clients (shopctl, loadgen) need nothing else of the servers' plumbing.
#![allow(unreachable_pub, missing_docs, clippy::all, clippy::pedantic, rust_2018_idioms)]

/// Rich gRPC errors: BadRequest field violations, ResourceInfo, ErrorInfo reasons.
pub mod status;

/// `by_id` / `by_reference` builders of the requests that name a hold.
mod holds;

/// `inventory.v1`: the inventory server's contract.
pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("inventory.v1");
    }
}

/// `events.v1`: what the services' outboxes record, as WatchEvents streams it.
pub mod events {
    pub mod v1 {
        tonic::include_proto!("events.v1");
    }
}

/// `order.v1`: the order server's contract.
pub mod order {
    pub mod v1 {
        tonic::include_proto!("order.v1");
    }
}

/// `product.v1`: the external catalog the order server reads.
pub mod product {
    pub mod v1 {
        tonic::include_proto!("product.v1");
    }
}

/// `payment.v1`: the external payment service the order server charges through.
pub mod payment {
    pub mod v1 {
        tonic::include_proto!("payment.v1");
    }
}

/// `user.v1`: the optional external user directory.
pub mod user {
    pub mod v1 {
        tonic::include_proto!("user.v1");
    }
}

/// Encoded `FileDescriptorSet` of every proto above, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
