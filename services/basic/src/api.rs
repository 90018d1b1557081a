//! basic's REST routes (go-game's paths, envelope replies).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use rsgame_kit::Reply;

use crate::{Basic, CaptchaImage};

/// The routes, over any [`Basic`] implementation.
pub fn router(basic: Arc<dyn Basic>) -> Router {
    Router::new().route("/basic/v1/basic/captcha", get(captcha).post(captcha)).with_state(basic)
}

async fn captcha(State(basic): State<Arc<dyn Basic>>) -> rsgame_kit::Result<Reply<CaptchaImage>> {
    basic.captcha().await.map(Reply)
}
