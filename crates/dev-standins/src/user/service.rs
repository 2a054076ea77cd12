//! The `user.v1.UserService` handler over a [`Directory`].

use std::sync::Arc;

use proto::user::v1 as pb;
use tonic::{Request, Response, Status};

use super::directory::Directory;
use crate::error::StandinError;
use crate::faults::Faults;

/// The gRPC face of the user directory.
#[derive(Debug, Clone)]
pub(crate) struct UserApi {
    directory: Arc<Directory>,
    faults: Faults,
}

impl UserApi {
    /// Handlers over `directory`, under `faults`.
    pub(crate) fn new(directory: Arc<Directory>, faults: Faults) -> Self {
        Self { directory, faults }
    }

    fn lookup(&self, user_id: String) -> Result<pb::User, StandinError> {
        if user_id.is_empty() {
            return Err(StandinError::invalid("user_id", "must not be empty"));
        }
        match self.directory.status(&user_id) {
            Some(status) => Ok(pb::User { id: user_id, status: status.as_str().to_owned() }),
            None => Err(StandinError::not_found("user", user_id)),
        }
    }
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for UserApi {
    #[tracing::instrument(skip_all, fields(user_id = %request.get_ref().user_id))]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let user_id = request.into_inner().user_id;
        let user = self.faults.around(async { self.lookup(user_id) }).await?;
        Ok(Response::new(user))
    }
}
