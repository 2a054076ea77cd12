use dev_standins::{Directory, User, UserApp, UserSettings, UserStatus};
use proto::user::v1::GetUserRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::{Server, assert_invalid};

async fn start(app: UserApp) -> (Server, UserServiceClient<tonic::transport::Channel>) {
    let server = Server::start(app.grpc_addr().unwrap(), |stop| app.run_until(stop)).await;
    let client = UserServiceClient::new(server.channel.clone());
    (server, client)
}

async fn status_of(
    client: &mut UserServiceClient<tonic::transport::Channel>,
    user_id: &str,
) -> Result<String, tonic::Status> {
    let user = client.get_user(GetUserRequest { user_id: user_id.to_owned() }).await?.into_inner();
    assert_eq!(user.id, user_id);
    Ok(user.status)
}

#[tokio::test]
async fn demo_users_found_blocked_and_unknown() {
    let (server, mut client) = start(UserApp::build(UserSettings::loopback()).await.unwrap()).await;
    assert_eq!(server.health("user.v1.UserService").await, ServingStatus::Serving);
    for id in ["user-1", "user-2", "user-3"] {
        assert_eq!(status_of(&mut client, id).await.unwrap(), "ACTIVE");
    }
    assert_eq!(status_of(&mut client, "user-blocked").await.unwrap(), "BLOCKED");
    assert_eq!(status_of(&mut client, "user-404").await.unwrap_err().code(), Code::NotFound);
    assert_invalid(&status_of(&mut client, "").await.unwrap_err(), "user_id");
    server.stop().await;
}

#[tokio::test]
async fn accept_any_answers_unknown_ids_active() {
    let settings = UserSettings { accept_any: true, ..UserSettings::loopback() };
    let (server, mut client) = start(UserApp::build(settings).await.unwrap()).await;
    assert_eq!(status_of(&mut client, "whoever").await.unwrap(), "ACTIVE");
    assert_eq!(status_of(&mut client, "user-blocked").await.unwrap(), "BLOCKED");
    assert_invalid(&status_of(&mut client, "").await.unwrap_err(), "user_id");
    server.stop().await;
}

#[tokio::test]
async fn serves_a_directory_built_in_code() {
    let directory =
        Directory::from_users(vec![User { id: "u-9".into(), status: UserStatus::Blocked }])
            .unwrap();
    let app = UserApp::build_with_directory(UserSettings::loopback(), directory).await.unwrap();
    let faults = app.faults();
    let (server, mut client) = start(app).await;
    assert_eq!(status_of(&mut client, "u-9").await.unwrap(), "BLOCKED");
    assert_eq!(status_of(&mut client, "user-1").await.unwrap_err().code(), Code::NotFound);
    faults.fail_next_n(1);
    assert_eq!(status_of(&mut client, "u-9").await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(status_of(&mut client, "u-9").await.unwrap(), "BLOCKED");
    server.stop().await;
}
