//! The optional user directory client.

use proto::user::v1::{self as pb, user_service_client::UserServiceClient};
use tonic::Code;

use super::{PeerChannel, PeerError, request, retrying, with_deadline};
use crate::settings::CallPolicy;

const PEER: &str = "user";

/// Whether a user may order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserStanding {
    Active,
    Blocked,
    Unknown,
    /// A status this client does not know; treated as not allowed to order.
    Other(String),
}

/// Client of `user.v1.UserService`.
#[derive(Debug, Clone)]
pub struct UserPeer {
    client: UserServiceClient<PeerChannel>,
    policy: CallPolicy,
}

impl UserPeer {
    /// A client over `channel`.
    pub fn new(channel: PeerChannel, policy: CallPolicy) -> Self {
        Self { client: UserServiceClient::new(channel), policy }
    }

    /// The standing of `user_id`.
    pub async fn standing(&self, user_id: &str) -> Result<UserStanding, PeerError> {
        let msg = pb::GetUserRequest { user_id: user_id.to_owned() };
        let result = retrying(self.policy, PEER, "get_user", || {
            let mut client = self.client.clone();
            let req = request(self.policy, msg.clone());
            with_deadline(self.policy.timeout, async move { client.get_user(req).await })
        })
        .await;
        match result {
            Ok(user) => Ok(match user.status.as_str() {
                "ACTIVE" => UserStanding::Active,
                "BLOCKED" => UserStanding::Blocked,
                _ => UserStanding::Other(user.status),
            }),
            Err(err) if err.peer_code() == Code::NotFound => Ok(UserStanding::Unknown),
            Err(err) => Err(err),
        }
    }
}
