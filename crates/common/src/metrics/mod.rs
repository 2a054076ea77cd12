//! Metrics live in prometheus' default registry, so every crate's statics end up on the same
//! `/metrics` page without passing a registry around.

mod grpc_layer;
mod registry;

use std::future::Future;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder as _, TEXT_FORMAT, TextEncoder};
use tokio::net::TcpListener;

pub use crate::grpc_call::{STANDARD_SERVICES, UNKNOWN_LABEL};
pub use grpc_layer::{
    GrpcMetricsLayer, GrpcMetricsService, MetricsBody, Recorder, ResponseFuture, grpc_code_name,
};
pub use registry::{
    LATENCY_BUCKETS, register_counter_vec, register_gauge, register_histogram_vec,
    register_int_gauge, register_int_gauge_vec,
};

/// Serves `GET /metrics` (Prometheus text format) on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(render));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn render() -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&prometheus::default_registry().gather(), &mut body) {
        Ok(()) => ([(CONTENT_TYPE, TEXT_FORMAT)], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_the_default_registry_and_404_elsewhere() {
        let gauge = register_int_gauge("common_test_metrics_endpoint", "test gauge");
        gauge.set(42);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));

        let response = get(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"),
            "{response}"
        );
        assert!(response.contains("common_test_metrics_endpoint 42"), "{response}");

        let response = get(addr, "/other").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
