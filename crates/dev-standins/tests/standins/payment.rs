use dev_standins::{ChargeStatus, Faults, Ledger, PaymentApp, PaymentSettings};
use proto::payment::v1::payment_service_client::PaymentServiceClient;
use proto::payment::v1::{
    ProcessPaymentRequest, ProcessPaymentResponse, RefundPaymentRequest, RefundPaymentResponse,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{Server, assert_invalid};

struct Stand {
    server: Server,
    client: PaymentServiceClient<Channel>,
    faults: Faults,
    ledger: Ledger,
}

impl Stand {
    async fn pay(
        &mut self,
        request: ProcessPaymentRequest,
    ) -> Result<ProcessPaymentResponse, Status> {
        Ok(self.client.process_payment(request).await?.into_inner())
    }

    async fn refund(
        &mut self,
        payment_id: &str,
        amount_minor: i64,
        key: &str,
    ) -> Result<RefundPaymentResponse, Status> {
        let request = RefundPaymentRequest {
            payment_id: payment_id.to_owned(),
            amount_minor,
            idempotency_key: key.to_owned(),
        };
        Ok(self.client.refund_payment(request).await?.into_inner())
    }
}

async fn start(settings: PaymentSettings) -> Stand {
    let app = PaymentApp::build(settings).await.unwrap();
    let (faults, ledger) = (app.faults(), app.ledger());
    let server = Server::start(app.grpc_addr().unwrap(), |stop| app.run_until(stop)).await;
    let client = PaymentServiceClient::new(server.channel.clone());
    Stand { server, client, faults, ledger }
}

async fn demo() -> Stand {
    start(PaymentSettings::loopback()).await
}

fn payment(order_id: &str, amount_minor: i64, key: &str) -> ProcessPaymentRequest {
    ProcessPaymentRequest {
        order_id: order_id.to_owned(),
        amount_minor,
        currency: "EUR".to_owned(),
        method: "card".to_owned(),
        idempotency_key: key.to_owned(),
    }
}

#[tokio::test]
async fn same_key_same_outcome_and_one_charge() {
    let mut stand = demo().await;
    assert_eq!(stand.server.health("payment.v1.PaymentService").await, ServingStatus::Serving);
    let first = stand.pay(payment("order-1", 1999, "order-1/pay")).await.unwrap();
    assert_eq!(first.status, "SUCCEEDED");
    assert!(first.payment_id.starts_with("pay_"), "{first:?}");
    let again = stand.pay(payment("order-1", 1999, "order-1/pay")).await.unwrap();
    assert_eq!(again, first);

    let charges = stand.ledger.charges_for_order("order-1");
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].payment_id, first.payment_id);
    assert_eq!((charges[0].amount_minor, charges[0].status), (1999, ChargeStatus::Succeeded));
    assert_eq!(stand.ledger.succeeded_count_for_order("order-1"), 1);

    // Reusing the key for something else is the caller's bug, named as such.
    for changed in
        [payment("order-1", 2000, "order-1/pay"), payment("order-2", 1999, "order-1/pay")]
    {
        assert_invalid(&stand.pay(changed).await.unwrap_err(), "idempotency_key");
    }
    assert_eq!(stand.ledger.charges().len(), 1);
    stand.server.stop().await;
}

#[tokio::test]
async fn concurrent_retries_charge_once() {
    let stand = demo().await;
    let calls = (0..16).map(|_| {
        let mut client = stand.client.clone();
        tokio::spawn(async move {
            client.process_payment(payment("order-c", 500, "k-c")).await.unwrap().into_inner()
        })
    });
    let answers = join_all(calls).await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(stand.ledger.charges().len(), 1);
    stand.server.stop().await;
}

async fn join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn declines_are_deterministic_and_stored() {
    let settings =
        PaymentSettings { decline_over_minor: Some(10_000), ..PaymentSettings::loopback() };
    let mut stand = start(settings).await;
    for (method, amount, key) in [
        ("card_decline", 100, "d-1"),
        ("decline_insufficient_funds", 100, "d-2"),
        ("card", 10_001, "d-3"),
    ] {
        let request =
            ProcessPaymentRequest { method: method.to_owned(), ..payment("order-d", amount, key) };
        let declined = stand.pay(request.clone()).await.unwrap();
        assert_eq!(declined.status, "DECLINED", "{method}");
        assert!(!declined.message.is_empty());
        assert_eq!(stand.pay(request).await.unwrap(), declined);
        // Nothing was taken, so there is nothing to refund.
        let err =
            stand.refund(&declined.payment_id, 1, &format!("{key}/refund")).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    assert_eq!(stand.pay(payment("order-d", 10_000, "ok")).await.unwrap().status, "SUCCEEDED");
    assert_eq!(stand.ledger.succeeded_count_for_order("order-d"), 1);
    assert_eq!(stand.ledger.charges_for_order("order-d").len(), 4);
    stand.server.stop().await;
}

#[tokio::test]
async fn malformed_payments_name_their_fields() {
    let mut stand = demo().await;
    let cases = [
        ("order_id", ProcessPaymentRequest { order_id: String::new(), ..payment("o", 1, "k") }),
        ("amount_minor", payment("o", 0, "k")),
        ("amount_minor", payment("o", -5, "k")),
        ("currency", ProcessPaymentRequest { currency: "eur".into(), ..payment("o", 1, "k") }),
        ("currency", ProcessPaymentRequest { currency: "EURO".into(), ..payment("o", 1, "k") }),
        ("method", ProcessPaymentRequest { method: String::new(), ..payment("o", 1, "k") }),
        ("idempotency_key", payment("o", 1, "")),
    ];
    for (field, request) in cases {
        assert_invalid(&stand.pay(request).await.unwrap_err(), field);
    }
    assert!(stand.ledger.charges().is_empty());
    stand.server.stop().await;
}

#[tokio::test]
async fn refunds_are_idempotent_and_bounded_by_the_charge() {
    let mut stand = demo().await;
    let paid = stand.pay(payment("order-r", 1000, "order-r/pay")).await.unwrap();
    let id = paid.payment_id.as_str();

    let first = stand.refund(id, 600, "r-1").await.unwrap();
    assert!(first.refund_id.starts_with("ref_"), "{first:?}");
    assert_eq!(first.status, "SUCCEEDED");
    assert_eq!(stand.refund(id, 600, "r-1").await.unwrap(), first);
    assert_invalid(&stand.refund(id, 500, "r-1").await.unwrap_err(), "idempotency_key");

    let over = stand.refund(id, 401, "r-2").await.unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition, "{over:?}");
    stand.refund(id, 400, "r-2").await.unwrap();
    assert_eq!(stand.refund(id, 1, "r-3").await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(stand.refund(id, 600, "r-1").await.unwrap(), first);

    assert_eq!(stand.refund("pay_unknown", 1, "r-4").await.unwrap_err().code(), Code::NotFound);
    assert_invalid(&stand.refund(id, 0, "r-5").await.unwrap_err(), "amount_minor");
    assert_invalid(&stand.refund("", 1, "r-5").await.unwrap_err(), "payment_id");
    assert_invalid(&stand.refund(id, 1, "").await.unwrap_err(), "idempotency_key");

    assert_eq!(stand.ledger.charge(id).unwrap().refunded_minor, 1000);
    assert_eq!(stand.ledger.refunds().len(), 2);
    stand.server.stop().await;
}

#[tokio::test]
async fn outcome_unknown_then_retry_gets_the_stored_outcome() {
    let mut stand = demo().await;
    stand.faults.fail_after_apply_next_n(1);
    let lost = stand.pay(payment("order-u", 750, "order-u/pay")).await.unwrap_err();
    assert_eq!(lost.code(), Code::Unavailable);
    // The charge happened even though the caller never heard of it.
    let charges = stand.ledger.charges_for_order("order-u");
    assert_eq!(charges.len(), 1);
    assert!(charges[0].succeeded());

    let retried = stand.pay(payment("order-u", 750, "order-u/pay")).await.unwrap();
    assert_eq!(
        (retried.payment_id.as_str(), retried.status.as_str()),
        (charges[0].payment_id.as_str(), "SUCCEEDED")
    );
    assert_eq!(stand.ledger.succeeded_count_for_order("order-u"), 1);

    // A refund whose answer is lost is likewise applied once.
    stand.faults.fail_after_apply_next_n(1);
    assert_eq!(
        stand.refund(&retried.payment_id, 750, "u-r").await.unwrap_err().code(),
        Code::Unavailable
    );
    let refund = stand.refund(&retried.payment_id, 750, "u-r").await.unwrap();
    assert_eq!(stand.ledger.refunds()[0].refund_id, refund.refund_id);
    assert_eq!(stand.ledger.refunds().len(), 1);
    stand.server.stop().await;
}

#[tokio::test]
async fn failures_before_the_call_charge_nothing() {
    let mut stand = demo().await;
    stand.faults.fail_next_n(1);
    assert_eq!(
        stand.pay(payment("order-f", 100, "f")).await.unwrap_err().code(),
        Code::Unavailable
    );
    assert!(stand.ledger.charges().is_empty());
    stand.faults.set_fail_all(true);
    assert_eq!(
        stand.pay(payment("order-f", 100, "f")).await.unwrap_err().code(),
        Code::Unavailable
    );
    stand.faults.set_fail_all(false);
    assert_eq!(stand.pay(payment("order-f", 100, "f")).await.unwrap().status, "SUCCEEDED");
    assert_eq!(stand.ledger.charges().len(), 1);
    stand.server.stop().await;
}

#[tokio::test]
async fn a_restart_with_the_same_ledger_remembers_payments() {
    let mut stand = demo().await;
    let paid = stand.pay(payment("order-x", 300, "order-x/pay")).await.unwrap();
    let ledger = stand.ledger.clone();
    stand.server.stop().await;

    let app = PaymentApp::build_with_ledger(PaymentSettings::loopback(), ledger).await.unwrap();
    let server = Server::start(app.grpc_addr().unwrap(), |stop| app.run_until(stop)).await;
    let mut client = PaymentServiceClient::new(server.channel.clone());
    let again =
        client.process_payment(payment("order-x", 300, "order-x/pay")).await.unwrap().into_inner();
    assert_eq!(again, paid);
    server.stop().await;
}
