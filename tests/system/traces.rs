//! Distributed tracing, as a collector sees it: the servers run in this process and export
//! over OTLP/gRPC to a receiver inside the test (`system_tests::otlp`). One CreateOrder is
//! one trace across the order server, the inventory server and the stand-ins, because the
//! W3C trace context crossed every real gRPC hop; a saga the recovery worker resumes runs in
//! a trace of its own, linked to the one that created the order.
//!
//! Each test installs the process's subscriber, so these need a process of their own (as
//! nextest gives every test).

use anyhow::Context as _;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use system_tests::TestSystem;
use system_tests::order_request;
use system_tests::otlp::{ReceivedSpan, traces};

/// The trace and span a client sends in its `traceparent`: a test's own, so tests sharing a
/// process (and its receiver, under `cargo test`) tell their spans apart.
struct Caller {
    trace_id: String,
    span_id: String,
}

impl Caller {
    fn new() -> Self {
        let span = uuid::Uuid::new_v4().simple().to_string();
        Self { trace_id: uuid::Uuid::new_v4().simple().to_string(), span_id: span[..16].to_owned() }
    }

    /// `request` with this caller's `traceparent` (sampled).
    fn request<T>(&self, request: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(request);
        let traceparent = format!("00-{}-{}-01", self.trace_id, self.span_id);
        request.metadata_mut().insert("traceparent", traceparent.parse()?);
        Ok(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_create_order_is_one_trace_across_both_servers() -> anyhow::Result<()> {
    let traces = traces()?;
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;

    let caller = Caller::new();
    let request = caller.request(order_request("alice", &[("p-widget", 2)]))?;
    let order = sys.client()?.create_order(request).await?.into_inner();
    assert_eq!(order.status, "CONFIRMED", "{order:?}");

    let spans = traces
        .wait_for("CreateOrder's trace with the commit's server span", |all| {
            let trace: Vec<_> = all.iter().filter(|s| s.trace_id == caller.trace_id).collect();
            ["order.v1.OrderService/CreateOrder", "inventory.v1.InventoryService/CommitReservation"]
                .iter()
                .all(|name| trace.iter().any(|s| s.name == *name && s.kind == SpanKind::Server))
        })
        .await?;
    let trace: Vec<ReceivedSpan> =
        spans.into_iter().filter(|s| s.trace_id == caller.trace_id).collect();

    // The order server continued the caller's trace.
    let create = one(&trace, "order.v1.OrderService/CreateOrder", SpanKind::Server)?;
    assert_eq!(create.parent_span_id, caller.span_id, "{create:?}");
    assert_eq!(create.attribute("rpc.grpc.status_code"), Some("0"));
    assert_eq!(create.attribute("rpc.system"), Some("grpc"));

    // Each inventory call: the inventory's server span is the child of the order server's
    // client span, which only happens when the traceparent crossed the wire; and that client
    // span is inside the CreateOrder span, under the saga step that made the call.
    for (rpc, step) in [("ReserveInventory", "saga.reserve"), ("CommitReservation", "saga.commit")]
    {
        let name = format!("inventory.v1.InventoryService/{rpc}");
        let server = one(&trace, &name, SpanKind::Server)?;
        let client = parent(&trace, server).with_context(|| format!("parent of {name}"))?;
        assert_eq!((client.name.as_str(), client.kind), (name.as_str(), SpanKind::Client));
        assert_eq!(server.attribute("rpc.grpc.status_code"), Some("0"), "{server:?}");
        let saga_step =
            parent(&trace, client).with_context(|| format!("parent of {name}'s call"))?;
        assert_eq!(saga_step.name, step);
        assert_eq!(saga_step.attribute("order_id"), Some(order.id.as_str()), "{saga_step:?}");
        assert_eq!(
            saga_step.attribute("reservation_id"),
            Some(order.inventory_reservation_id.as_str()),
            "{saga_step:?}"
        );
        assert!(descends_from(&trace, client, &create.span_id), "{name}'s call is in CreateOrder");
    }

    // The stand-ins' calls are in the same trace, through their own hops.
    for name in ["product.v1.ProductService/GetProduct", "payment.v1.PaymentService/ProcessPayment"]
    {
        let server = one(&trace, name, SpanKind::Server)?;
        let client = parent(&trace, server).with_context(|| format!("parent of {name}"))?;
        assert_eq!(client.kind, SpanKind::Client, "{client:?}");
        assert!(descends_from(&trace, client, &create.span_id), "{name}'s call is in CreateOrder");
    }
    assert!(trace.iter().all(|s| s.service == "system-tests"), "the resource names the service");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_saga_runs_in_a_new_trace_linked_to_the_order_s_first() -> anyhow::Result<()> {
    let traces = traces()?;
    let sys = TestSystem::start().await?;
    sys.stock("WIDGET", 5).await?;
    sys.payment_faults.set_fail_all(true);

    // The payment is down: the request answers with the hold taken, the payment waits for
    // the recovery worker.
    let caller = Caller::new();
    let request = caller.request(order_request("alice", &[("p-widget", 1)]))?;
    let order = sys.client()?.create_order(request).await?.into_inner();
    assert_eq!(order.status, "RESERVED", "{order:?}");
    let stored: Option<String> =
        sqlx::query_scalar("select trace_parent from orders.orders where id = $1::uuid")
            .bind(&order.id)
            .fetch_one(&sys.db.pool)
            .await?;
    let stored = stored.context("the order keeps its creating request's trace context")?;

    sys.payment_faults.set_fail_all(false);
    let settled = sys.wait_settled(&order.id).await?;
    assert_eq!(settled.status, "CONFIRMED", "{settled:?}");

    let spans = traces
        .wait_for("the recovered run's commit", |all| recovered_commit(all, &order.id).is_some())
        .await?;

    // What the order stored is the context of the request's own span (CreateOrder's
    // workflow), in the caller's trace.
    let first: Vec<_> = spans.iter().filter(|s| s.trace_id == caller.trace_id).cloned().collect();
    let create = first
        .iter()
        .find(|s| format!("00-{}-{}-01", s.trace_id, s.span_id) == stored)
        .with_context(|| format!("no span of the first trace is the stored {stored}"))?;
    assert!(descends_from(
        &first,
        create,
        &one(&first, "order.v1.OrderService/CreateOrder", SpanKind::Server)?.span_id
    ));

    // The recovery run that confirmed the order: a root of a new trace, linked to that span
    // (as is every earlier run that found the payment still down); its payment and commit
    // calls cross the wire in that new trace.
    let commit = recovered_commit(&spans, &order.id).context("the recovered commit")?;
    let runs: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "saga.recover" && s.attribute("order_id") == Some(order.id.as_str()))
        .collect();
    for run in &runs {
        assert_ne!(run.trace_id, caller.trace_id);
        assert_eq!(run.parent_span_id, "", "a root: {run:?}");
        assert_eq!(run.links, [(create.trace_id.clone(), create.span_id.clone())]);
    }
    let recover = runs
        .iter()
        .find(|run| run.trace_id == commit.trace_id)
        .context("the run that committed is a recovery run")?;
    let rerun: Vec<_> = spans.iter().filter(|s| s.trace_id == recover.trace_id).cloned().collect();
    for name in [
        "payment.v1.PaymentService/ProcessPayment",
        "inventory.v1.InventoryService/CommitReservation",
    ] {
        let server = one(&rerun, name, SpanKind::Server)?;
        let client = parent(&rerun, server).with_context(|| format!("parent of {name}"))?;
        assert_eq!(client.kind, SpanKind::Client, "{client:?}");
        assert!(descends_from(&rerun, client, &recover.span_id), "{name} in the recovery run");
    }
    Ok(())
}

/// The inventory's CommitReservation server span in a trace the recovery worker started
/// for order `id`.
fn recovered_commit<'a>(spans: &'a [ReceivedSpan], id: &str) -> Option<&'a ReceivedSpan> {
    let runs: Vec<&str> = spans
        .iter()
        .filter(|s| s.name == "saga.recover" && s.attribute("order_id") == Some(id))
        .map(|s| s.trace_id.as_str())
        .collect();
    spans.iter().find(|s| {
        runs.contains(&s.trace_id.as_str())
            && s.name == "inventory.v1.InventoryService/CommitReservation"
            && s.kind == SpanKind::Server
    })
}

/// The one span named `name` of `kind` in `spans`.
fn one<'a>(
    spans: &'a [ReceivedSpan],
    name: &str,
    kind: SpanKind,
) -> anyhow::Result<&'a ReceivedSpan> {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name && s.kind == kind).collect();
    match found.as_slice() {
        [span] => Ok(span),
        other => anyhow::bail!("{} {kind:?} spans named {name}: {other:?}", other.len()),
    }
}

/// The parent of `span` among `spans`.
fn parent<'a>(spans: &'a [ReceivedSpan], span: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| s.span_id == span.parent_span_id)
}

/// Whether `ancestor` is `span`'s parent, or its parent's, and so on, within `spans`.
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &str) -> bool {
    let mut at = span;
    // Bounded: a malformed export cannot loop forever.
    for _ in 0..spans.len() {
        if at.parent_span_id == ancestor {
            return true;
        }
        match parent(spans, at) {
            Some(up) => at = up,
            None => return false,
        }
    }
    false
}
