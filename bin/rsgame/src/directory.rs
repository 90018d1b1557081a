//! The world's view of accounts, read from usercenter (in process or over gRPC).

use std::sync::Arc;

use rsgame_kit::{Code, Error, Result};
use rsgame_world::{Directory, Profile};

/// usercenter as the world's [`Directory`].
pub struct UsercenterDirectory(pub Arc<dyn rsgame_usercenter::UserCenter>);

#[async_trait::async_trait]
impl Directory for UsercenterDirectory {
    async fn profile(&self, user_id: i64) -> Result<Profile> {
        let u = self.0.user_info(user_id).await?;
        // go-game's statuses 3 (banned) and 5 (closed) cannot play, whatever token they hold.
        if u.status == 3 || u.status == 5 {
            return Err(Error::msg(Code::Forbidden, "this account cannot play"));
        }
        Ok(Profile { username: u.username, nickname: u.nickname, sex: u.sex, image: u.avatar })
    }
}
