//! Starting a stand-in on port 0 and reading its answers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// What `run_until` waits on.
pub(crate) type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A stand-in running in the background.
pub(crate) struct Server {
    pub(crate) channel: Channel,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Runs `run(stop)` (an App's `run_until`) and connects to `addr`.
    pub(crate) async fn start<F>(addr: SocketAddr, run: impl FnOnce(Stop) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        common::telemetry::init_for_tests();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        let channel =
            Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        Self { channel, stop, task }
    }

    /// Stops the server and expects a clean exit.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    /// The health status of `service` ("" for the whole server).
    pub(crate) async fn health(&self, service: &str) -> ServingStatus {
        let mut client = HealthClient::new(self.channel.clone());
        let request = HealthCheckRequest { service: service.to_owned() };
        client.check(request).await.unwrap().into_inner().status()
    }
}

/// Asserts `status` is INVALID_ARGUMENT with a bad-request violation of `field`.
pub(crate) fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|br| br.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert!(fields.iter().any(|f| f == field), "no violation of {field}: {fields:?} ({status:?})");
    assert!(status.message().contains(field), "{status:?}");
}
