//! Order reads and cancels bound to an authenticated user: over mutual TLS, an edge identity
//! (`TRUSTED_EDGE_IDENTITIES`) acts for the user it names in `x-user-id` only, an operator
//! identity (`OPERATOR_IDENTITIES`) for anyone, and every other caller is refused.

use order_service::settings::UserBindingSettings;
use proto::order::v1 as pb;
use system_tests::tls::TestPki;
use system_tests::{
    OrderClient, PlantedOrder, SystemOptions, TestOrderServer, TestSystem, order_request,
};
use tonic::{Code, Request, Status};

const EDGE: &str = "storefront";
const OPERATOR: &str = "support";

/// The system with one order server under mutual TLS and user binding on.
struct Bound {
    sys: TestSystem,
    pki: TestPki,
    server: TestOrderServer,
}

impl Bound {
    async fn start() -> anyhow::Result<Self> {
        let sys = TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() })
            .await?;
        sys.stock("WIDGET", 20).await?;
        let pki = TestPki::new()?;
        let mut settings = sys.order_settings.clone();
        settings.tls = pki.server_mtls();
        settings.user_binding = UserBindingSettings {
            trusted_edge_identities: vec![EDGE.into()],
            operator_identities: vec![OPERATOR.into()],
        };
        // Health is not bound: the harness waits for SERVING under any certificate.
        let server =
            TestOrderServer::start_over(settings, Some(pki.client_tls(Some("harness"))?)).await?;
        Ok(Self { sys, pki, server })
    }

    /// A client presenting a certificate named `identity`.
    fn client(&self, identity: &str) -> anyhow::Result<OrderClient> {
        let tls = self.pki.client_tls(Some(identity))?;
        Ok(OrderClient::new(system_tests::endpoint(self.server.addr, Some(&tls))?.connect_lazy()))
    }

    /// An edge client acting for `user`.
    fn edge(&self, user: &str) -> anyhow::Result<Caller> {
        Ok(Caller { client: self.client(EDGE)?, user: Some(user.to_owned()) })
    }

    /// A caller presenting `identity` and no `x-user-id`.
    fn anonymous(&self, identity: &str) -> anyhow::Result<Caller> {
        Ok(Caller { client: self.client(identity)?, user: None })
    }

    /// An order of `user`, planted PENDING and not due for a while, so it stays cancellable.
    async fn pending_order_of(&self, user: &str) -> anyhow::Result<String> {
        let mut planted = PlantedOrder::pending(&[("p-widget", "WIDGET", 1, 250)]);
        planted.user_id = user.to_owned();
        planted.due_in_ms = 600_000;
        self.sys.plant(&planted).await
    }
}

/// One client and the user it states (if any), with the five user-facing RPCs.
struct Caller {
    client: OrderClient,
    user: Option<String>,
}

impl Caller {
    fn request<T>(&self, msg: T) -> anyhow::Result<Request<T>> {
        let mut req = Request::new(msg);
        if let Some(user) = &self.user {
            req.metadata_mut().insert("x-user-id", user.parse()?);
        }
        Ok(req)
    }

    async fn create(&self, user: &str) -> anyhow::Result<Result<pb::Order, Status>> {
        let req = self.request(order_request(user, &[("p-widget", 1)]))?;
        Ok(self.client.clone().create_order(req).await.map(|r| r.into_inner()))
    }

    async fn get(&self, id: &str) -> anyhow::Result<Result<pb::Order, Status>> {
        let req = self.request(pb::GetOrderRequest { order_id: id.to_owned() })?;
        Ok(self.client.clone().get_order(req).await.map(|r| r.into_inner()))
    }

    async fn list(&self, user: &str) -> anyhow::Result<Result<Vec<pb::Order>, Status>> {
        let req =
            self.request(pb::ListOrdersRequest { user_id: user.to_owned(), ..Default::default() })?;
        Ok(self.client.clone().list_orders(req).await.map(|r| r.into_inner().orders))
    }

    async fn cancel(&self, id: &str) -> anyhow::Result<Result<pb::Order, Status>> {
        let req = self
            .request(pb::CancelOrderRequest { order_id: id.to_owned(), reason: String::new() })?;
        Ok(self.client.clone().cancel_order(req).await.map(|r| r.into_inner()))
    }

    async fn return_all(&self, id: &str) -> anyhow::Result<Result<pb::OrderReturn, Status>> {
        let req = self.request(pb::ReturnOrderRequest {
            order_id: id.to_owned(),
            items: Vec::new(),
            reason: "changed my mind".into(),
            idempotency_key: "return-all".into(),
        })?;
        Ok(self.client.clone().return_order(req).await.map(|r| r.into_inner()))
    }

    /// The code of each of the five RPCs (create and list for `user`, get, cancel and return
    /// `id`).
    async fn codes(&self, user: &str, id: &str) -> anyhow::Result<[Code; 5]> {
        let code = |r: Result<(), Status>| r.err().map_or(Code::Ok, |s| s.code());
        Ok([
            code(self.create(user).await?.map(drop)),
            code(self.get(id).await?.map(drop)),
            code(self.list(user).await?.map(drop)),
            code(self.cancel(id).await?.map(drop)),
            code(self.return_all(id).await?.map(drop)),
        ])
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn an_edge_acts_for_the_user_it_names_and_sees_no_other_user_s_orders() -> anyhow::Result<()>
{
    let bound = Bound::start().await?;
    let alice = bound.edge("alice")?;
    let bob = bound.edge("bob")?;

    let mine = alice.create("alice").await??;
    assert_eq!(mine.status, "CONFIRMED", "{mine:?}");
    assert_eq!(mine.user_id, "alice");
    let bobs = bob.create("bob").await??;
    assert_eq!(alice.get(&mine.id).await??.id, mine.id);
    let listed = alice.list("alice").await??;
    assert_eq!(listed.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), [mine.id.as_str()]);

    // Another user's order answers exactly as an order that does not exist.
    let hidden = alice.get(&bobs.id).await?.unwrap_err();
    let absent_id = uuid::Uuid::now_v7().to_string();
    let absent = alice.get(&absent_id).await?.unwrap_err();
    assert_eq!((hidden.code(), absent.code()), (Code::NotFound, Code::NotFound));
    assert_eq!(
        hidden.message().replace(&bobs.id, "ID"),
        absent.message().replace(&absent_id, "ID")
    );
    // Bob's CONFIRMED order would refuse a cancel with FAILED_PRECONDITION; Alice must not
    // even learn that.
    let cancel = alice.cancel(&bobs.id).await?.unwrap_err();
    assert_eq!(cancel.code(), Code::NotFound, "{cancel:?}");
    assert_eq!(
        cancel.message().replace(&bobs.id, "ID"),
        absent.message().replace(&absent_id, "ID")
    );

    // Nor may she return it: the same NOT_FOUND, and no return is written.
    let returned = alice.return_all(&bobs.id).await?.unwrap_err();
    assert_eq!(returned.code(), Code::NotFound, "{returned:?}");
    assert_eq!(
        returned.message().replace(&bobs.id, "ID"),
        absent.message().replace(&absent_id, "ID")
    );
    assert_eq!(bound.sys.return_count(&bobs.id).await?, 0);
    // Her own confirmed order she may return.
    assert_eq!(alice.return_all(&mine.id).await??.order_id, mine.id);
    assert_eq!(bound.sys.return_count(&mine.id).await?, 1);

    // Naming another user herself is refused outright, and writes nothing.
    let orders_before = bound.sys.order_count().await?;
    assert_eq!(code(alice.list("bob").await?), Code::PermissionDenied);
    assert_eq!(code(alice.create("bob").await?), Code::PermissionDenied);
    assert_eq!(bound.sys.order_count().await?, orders_before);

    // Cancels: her own pending order yes, Bob's no (and it stays as it was).
    let her_pending = bound.pending_order_of("alice").await?;
    let his_pending = bound.pending_order_of("bob").await?;
    assert_eq!(alice.cancel(&her_pending).await??.status, "CANCELLED");
    assert_eq!(code(alice.cancel(&his_pending).await?), Code::NotFound);
    assert_eq!(bound.sys.saga_row(&his_pending).await?.status, "PENDING");
    Ok(())
}

#[tokio::test]
async fn an_operator_reads_lists_and_cancels_any_user_s_orders() -> anyhow::Result<()> {
    let bound = Bound::start().await?;
    let bobs = bound.edge("bob")?.create("bob").await??;
    let his_pending = bound.pending_order_of("bob").await?;
    let support = bound.anonymous(OPERATOR)?;

    assert_eq!(support.get(&bobs.id).await??.user_id, "bob");
    assert_eq!(support.list("bob").await??.len(), 2);
    assert_eq!(support.cancel(&his_pending).await??.status, "CANCELLED");
    // Operators pass through to the business rules: a confirmed order is not cancellable,
    // but returnable.
    assert_eq!(code(support.cancel(&bobs.id).await?), Code::FailedPrecondition);
    assert_eq!(support.return_all(&bobs.id).await??.order_id, bobs.id);
    // An x-user-id from an operator changes nothing.
    let support_as_alice = Caller { client: bound.client(OPERATOR)?, user: Some("alice".into()) };
    assert_eq!(support_as_alice.get(&bobs.id).await??.id, bobs.id);
    Ok(())
}

#[tokio::test]
async fn callers_that_are_not_identified_or_not_allowed_are_refused() -> anyhow::Result<()> {
    let bound = Bound::start().await?;
    let bobs = bound.edge("bob")?.create("bob").await??;

    // An edge that does not name its user has not said for whom it calls.
    let nameless = bound.anonymous(EDGE)?;
    assert_eq!(nameless.codes("bob", &bobs.id).await?, [Code::Unauthenticated; 5]);
    let empty = Caller { client: bound.client(EDGE)?, user: Some(String::new()) };
    assert_eq!(empty.codes("bob", &bobs.id).await?, [Code::Unauthenticated; 5]);

    // A certificate of the right CA, but on neither list.
    let intruder = bound.anonymous("intruder")?;
    assert_eq!(intruder.codes("bob", &bobs.id).await?, [Code::PermissionDenied; 5]);
    let refused = intruder.get(&bobs.id).await?.unwrap_err();
    assert!(refused.message().contains("intruder"), "{refused:?}");
    let with_user = Caller { client: bound.client("intruder")?, user: Some("bob".into()) };
    assert_eq!(with_user.codes("bob", &bobs.id).await?, [Code::PermissionDenied; 5]);

    // Only the order the edge placed for Bob exists, and nobody returned it.
    assert_eq!(bound.sys.order_count().await?, 1);
    assert_eq!(bound.sys.return_count(&bobs.id).await?, 0);
    Ok(())
}

#[tokio::test]
async fn user_binding_refuses_to_start_without_mutual_tls() -> anyhow::Result<()> {
    let sys =
        TestSystem::start_with(SystemOptions { order_servers: 0, ..Default::default() }).await?;
    let pki = TestPki::new()?;
    for tls in [Default::default(), pki.server_tls()] {
        for binding in [
            UserBindingSettings {
                trusted_edge_identities: vec![EDGE.into()],
                ..Default::default()
            },
            UserBindingSettings {
                operator_identities: vec![OPERATOR.into()],
                ..Default::default()
            },
        ] {
            let mut settings = sys.order_settings.clone();
            settings.tls = tls.clone();
            settings.user_binding = binding.clone();
            let Err(err) = order_service::App::build(settings).await else {
                anyhow::bail!("started with {binding:?} and {tls:?}");
            };
            let message = format!("{err:#}");
            for setting in ["TRUSTED_EDGE_IDENTITIES", "OPERATOR_IDENTITIES", "TLS_CLIENT_CA_PATH"]
            {
                assert!(message.contains(setting), "{message}");
            }
        }
    }
    Ok(())
}
