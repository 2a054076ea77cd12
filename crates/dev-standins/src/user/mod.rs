//! The user stand-in: `user.v1.UserService/GetUser` over an in-memory directory.

pub mod directory;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use proto::user::v1::user_service_server::UserServiceServer;
use tonic::service::Routes;

use crate::app::{Bound, StandIn};
use crate::faults::Faults;
use crate::settings::UserSettings;
use directory::Directory;
use service::UserApi;

/// The gRPC service name health reports on.
pub const SERVICE_NAME: &str = "user.v1.UserService";

const STAND_IN: StandIn = StandIn { service: SERVICE_NAME, label: "user" };

/// A bound, not yet running user stand-in.
#[derive(Debug)]
pub struct UserApp {
    bound: Bound,
    directory: Arc<Directory>,
    faults: Faults,
}

impl UserApp {
    /// Loads the users (`users_path`, else the demo) and binds the gRPC listener.
    pub async fn build(settings: UserSettings) -> anyhow::Result<Self> {
        let directory = match &settings.users_path {
            Some(path) => Directory::load(path)?,
            None => Directory::demo().context("the built-in demo users")?,
        };
        Self::build_with_directory(settings, directory).await
    }

    /// Binds the gRPC listener serving `directory` (`users_path` is ignored; `accept_any`
    /// from the settings applies when true).
    pub async fn build_with_directory(
        settings: UserSettings,
        directory: Directory,
    ) -> anyhow::Result<Self> {
        let bound = Bound::bind(STAND_IN, settings.grpc_addr, &settings.tls).await?;
        let directory = if settings.accept_any { directory.accept_any(true) } else { directory };
        Ok(Self {
            bound,
            directory: Arc::new(directory),
            faults: Faults::with_latency_ms(settings.latency_ms),
        })
    }

    /// The address gRPC clients connect to.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        self.bound.addr()
    }

    /// The fault switchboard of this server; clone it before running.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Runs until `shutdown` resolves, then finishes the calls in flight and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let api = UserApi::new(self.directory, self.faults);
        self.bound.serve(Routes::new(UserServiceServer::new(api)), shutdown).await
    }
}
