//! End-to-end tests: real PostgreSQL (one database per test), real servers on loopback.

mod events;
mod failover;
mod ha;
mod inventory;
mod order;
mod outage;
mod overload;
mod reflection;
mod security;
mod shutdown;
mod traces;
