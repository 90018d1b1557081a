//! usercenter over gRPC: [`UsercenterRpc`] serves any [`UserCenter`]; [`RemoteUserCenter`]
//! calls one and implements the same trait, so the REST API runs unchanged on either.

use std::sync::Arc;

use rsgame_kit::auth::{AccessToken, Claims};
use rsgame_kit::{Code, Error, Result};
use rsgame_rpc::pb::usercenter as pb;
use rsgame_rpc::pb::usercenter::usercenter_client::UsercenterClient;
use rsgame_rpc::pb::usercenter::usercenter_server::{Usercenter, UsercenterServer};
use tonic::{Request, Response, Status};

use crate::logic::{
    BindReq, CodeLoginReq, DeviceLoginReq, IdentityInfo, LoginReq, ProfileReq, RegisterReq, ResetPasswordReq,
    ScanTicket, Tokens, UnbindReq, UserCenter, UserInfo, WechatLoginReq,
};

type Reply<T> = std::result::Result<Response<T>, Status>;

fn tokens(t: Tokens) -> pb::TokenResp {
    pb::TokenResp {
        access_token: t.access.access_token,
        access_expire: t.access.access_expire,
        refresh_after: t.access.refresh_after,
        refresh_token: t.refresh_token,
    }
}

fn from_tokens(t: pb::TokenResp) -> Tokens {
    Tokens {
        access: AccessToken {
            access_token: t.access_token,
            access_expire: t.access_expire,
            refresh_after: t.refresh_after,
        },
        refresh_token: t.refresh_token,
    }
}

fn user(u: UserInfo) -> pb::UserInfo {
    pb::UserInfo {
        id: u.id,
        username: u.username,
        mobile: u.mobile,
        email: u.email,
        nickname: u.nickname,
        realname: u.realname,
        sex: u.sex,
        avatar: u.avatar,
        status: u.status,
    }
}

fn from_user(u: pb::UserInfo) -> UserInfo {
    UserInfo {
        id: u.id,
        username: u.username,
        mobile: u.mobile,
        email: u.email,
        nickname: u.nickname,
        realname: u.realname,
        sex: u.sex,
        avatar: u.avatar,
        status: u.status,
    }
}

fn ok<T>(r: Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(rsgame_rpc::status)
}

/// The gRPC server over a [`UserCenter`].
pub struct UsercenterRpc(pub Arc<dyn UserCenter>);

impl UsercenterRpc {
    /// The tonic service.
    pub fn service(svc: Arc<dyn UserCenter>) -> UsercenterServer<UsercenterRpc> {
        UsercenterServer::new(UsercenterRpc(svc))
    }
}

#[tonic::async_trait]
impl Usercenter for UsercenterRpc {
    async fn login(&self, r: Request<pb::LoginReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        let req = LoginReq {
            username: r.username,
            password: r.password,
            captcha_key: r.captcha_key,
            captcha_code: r.captcha_code,
        };
        ok(self.0.login(req, &r.ip).await.map(tokens))
    }

    async fn register(&self, r: Request<pb::RegisterReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        let req = RegisterReq {
            username: r.username,
            password: r.password,
            nickname: r.nickname,
            captcha_key: r.captcha_key,
            captcha_code: r.captcha_code,
        };
        ok(self.0.register(req, &r.ip).await.map(tokens))
    }

    async fn get_user_info(&self, r: Request<pb::GetUserInfoReq>) -> Reply<pb::UserInfoResp> {
        ok(self.0.user_info(r.into_inner().id).await.map(|u| pb::UserInfoResp { user: Some(user(u)) }))
    }

    async fn get_user_auth_by_auth_key(&self, r: Request<pb::GetUserAuthByAuthKeyReq>) -> Reply<pb::UserInfoResp> {
        let r = r.into_inner();
        ok(self.0.user_by_auth_key(&r.auth_key, &r.auth_type).await.map(|u| pb::UserInfoResp { user: Some(user(u)) }))
    }

    async fn get_user_auth_by_user_id(&self, r: Request<pb::GetUserAuthByUserIdReq>) -> Reply<pb::UserAuthResp> {
        let r = r.into_inner();
        let res = async {
            let u = self.0.user_info(r.user_id).await?;
            let auth_key = match r.auth_type.as_str() {
                "username" | "" => u.username,
                "mobile" => u.mobile,
                "email" => u.email,
                _ => return Err(Error::bad_param("authType: username, mobile or email")),
            };
            if auth_key.is_empty() {
                return Err(Error::new(Code::NotFound));
            }
            Ok(pb::UserAuthResp { user_auth: Some(pb::UserAuth { user_id: u.id, auth_type: r.auth_type, auth_key }) })
        };
        ok(res.await)
    }

    async fn generate_token(&self, r: Request<pb::GenerateTokenReq>) -> Reply<pb::TokenResp> {
        ok(self.0.generate_token(r.into_inner().user_id).await.map(tokens))
    }

    async fn refresh(&self, r: Request<pb::RefreshReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        ok(self.0.refresh(&r.refresh_token, &r.ip).await.map(tokens))
    }

    async fn logout(&self, r: Request<pb::LogoutReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        // A logout needs the token's id and expiry; its issue time in ms is not carried.
        let claims = Claims { user_id: r.user_id, iat: r.iat, exp: r.exp, jti: r.jti, iat_ms: 0 };
        ok(self.0.logout(&claims, Some(&r.refresh_token), &r.ip).await.map(|()| pb::Empty {}))
    }

    async fn login_device(&self, r: Request<pb::LoginDeviceReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        let req = DeviceLoginReq { device_id: r.device_id, captcha_key: r.captcha_key, captcha_code: r.captcha_code };
        ok(self.0.login_device(req, &r.ip).await.map(tokens))
    }

    async fn change_password(&self, r: Request<pb::ChangePasswordReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        ok(self.0.change_password(r.user_id, r.old_password, r.new_password, &r.ip).await.map(tokens))
    }

    async fn logout_all(&self, r: Request<pb::LogoutAllReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        ok(self.0.logout_all(r.user_id, &r.ip).await.map(|()| pb::Empty {}))
    }

    async fn scan_create(&self, r: Request<pb::ScanCreateReq>) -> Reply<pb::ScanTicket> {
        ok(self.0.scan_create(&r.into_inner().ip).await.map(|t| pb::ScanTicket {
            value: t.value,
            qr: t.qr,
            expire_time: t.expire_time,
        }))
    }

    async fn scan_confirm(&self, r: Request<pb::ScanConfirmReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        ok(self.0.scan_confirm(r.user_id, &r.value, &r.ip).await.map(|()| pb::Empty {}))
    }

    async fn login_scan(&self, r: Request<pb::LoginScanReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        ok(self.0.login_scan(&r.value, &r.ip).await.map(tokens))
    }
    async fn login_code(&self, r: Request<pb::LoginCodeReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        let req = CodeLoginReq { target: r.target, code: r.code, key: r.key };
        ok(self.0.login_code(req, &r.ip).await.map(tokens))
    }

    async fn login_wechat(&self, r: Request<pb::LoginWechatReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        ok(self.0.login_wechat(WechatLoginReq { code: r.code }, &r.ip).await.map(tokens))
    }

    async fn reset_password(&self, r: Request<pb::ResetPasswordReq>) -> Reply<pb::TokenResp> {
        let r = r.into_inner();
        let req = ResetPasswordReq { target: r.target, code: r.code, key: r.key, new: r.new_password };
        ok(self.0.reset_password(req, &r.ip).await.map(tokens))
    }

    async fn bind(&self, r: Request<pb::BindReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        let req = BindReq {
            kind: r.kind,
            device_id: r.device_id,
            target: r.target,
            code: r.code,
            key: r.key,
            username: r.username,
            password: r.password,
        };
        ok(self.0.bind(r.user_id, req, &r.ip).await.map(|()| pb::Empty {}))
    }

    async fn unbind(&self, r: Request<pb::UnbindReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        let req = UnbindReq { kind: r.kind, device_id: r.device_id };
        ok(self.0.unbind(r.user_id, req, &r.ip).await.map(|()| pb::Empty {}))
    }

    async fn detail(&self, r: Request<pb::DetailReq>) -> Reply<pb::DetailResp> {
        ok(self.0.detail(r.into_inner().user_id).await.map(|(u, list)| pb::DetailResp {
            user: Some(user(u)),
            identities: list
                .into_iter()
                .map(|i| pb::Identity { kind: i.kind, hint: i.hint, created_at: i.created_at })
                .collect(),
        }))
    }

    async fn profiles(&self, r: Request<pb::ProfilesReq>) -> Reply<pb::ProfilesResp> {
        ok(self.0.profiles(&r.into_inner().user_ids).await.map(|list| pb::ProfilesResp {
            profiles: list
                .into_iter()
                .map(|p| pb::PublicProfile { user_id: p.user_id, nickname: p.nickname, avatar: p.avatar })
                .collect(),
        }))
    }

    async fn update_profile(&self, r: Request<pb::UpdateProfileReq>) -> Reply<pb::UserInfoResp> {
        let r = r.into_inner();
        let req = ProfileReq { nickname: r.nickname, avatar: r.avatar, sex: r.sex };
        ok(self.0.update_profile(r.user_id, req).await.map(|u| pb::UserInfoResp { user: Some(user(u)) }))
    }

    async fn delete_account(&self, r: Request<pb::DeleteAccountReq>) -> Reply<pb::Empty> {
        let r = r.into_inner();
        ok(self.0.delete_account(r.user_id, r.issued_ms, &r.ip).await.map(|()| pb::Empty {}))
    }
}

/// A usercenter reached over gRPC.
#[derive(Clone)]
pub struct RemoteUserCenter {
    client: UsercenterClient<rsgame_rpc::RpcChannel>,
}

impl RemoteUserCenter {
    /// The methods a retry on another replica may repeat after one saw them: reads, `Login`
    /// and `LoginDevice`. A login whose reply was lost (its replica died mid-call) and that is
    /// retried issues a second session; the first one's refresh token was never delivered, so
    /// nobody can use it and it expires. Its only other traces are one more login log row and,
    /// for a wrong password, one failure counted twice. A device's first login retried finds
    /// the account the lost call made and logs into it. `Register`, `Refresh` (a rotated token
    /// presented again revokes its family), `Logout`, `LogoutAll`, `ChangePassword` (the
    /// old password no longer matches), the QR calls, and every call that uses up a code
    /// (`LoginCode`, `ResetPassword`, `Bind`, `LoginWechat`: WeChat's codes work once too)
    /// are not retried once a server saw them.
    pub const IDEMPOTENT: &'static [&'static str] =
        &["GetUserInfo", "GetUserAuthByAuthKey", "GetUserAuthByUserId", "Login", "LoginDevice", "Detail", "Profiles"];

    /// A client over `connector`'s channel to `url` (`http://host:port`, a list, or `etcd`).
    pub fn connect(connector: &rsgame_rpc::Connector, url: &str) -> Result<RemoteUserCenter> {
        Ok(RemoteUserCenter::over(connector.channel("usercenter", url, Self::IDEMPOTENT)?))
    }

    /// A client over `channel`.
    pub fn over(channel: rsgame_rpc::RpcChannel) -> RemoteUserCenter {
        RemoteUserCenter { client: UsercenterClient::new(channel) }
    }
}

fn missing() -> Error {
    Error::internal(Code::Failed, std::io::Error::other("usercenter replied without a user"))
}

#[async_trait::async_trait]
impl UserCenter for RemoteUserCenter {
    async fn register(&self, req: RegisterReq, ip: &str) -> Result<Tokens> {
        let r = pb::RegisterReq {
            username: req.username,
            password: req.password,
            nickname: req.nickname,
            ip: ip.into(),
            captcha_key: req.captcha_key,
            captcha_code: req.captcha_code,
        };
        self.client.clone().register(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn login(&self, req: LoginReq, ip: &str) -> Result<Tokens> {
        let r = pb::LoginReq {
            username: req.username,
            password: req.password,
            captcha_key: req.captcha_key,
            captcha_code: req.captcha_code,
            ip: ip.into(),
        };
        self.client.clone().login(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn login_device(&self, req: DeviceLoginReq, ip: &str) -> Result<Tokens> {
        let r = pb::LoginDeviceReq {
            device_id: req.device_id,
            captcha_key: req.captcha_key,
            captcha_code: req.captcha_code,
            ip: ip.into(),
        };
        self.client.clone().login_device(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn user_info(&self, user_id: i64) -> Result<UserInfo> {
        let r =
            self.client.clone().get_user_info(pb::GetUserInfoReq { id: user_id }).await.map_err(rsgame_rpc::error)?;
        r.into_inner().user.map(from_user).ok_or_else(missing)
    }

    async fn refresh(&self, refresh_token: &str, ip: &str) -> Result<Tokens> {
        let r = pb::RefreshReq { refresh_token: refresh_token.into(), ip: ip.into() };
        self.client.clone().refresh(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn logout(&self, claims: &Claims, refresh_token: Option<&str>, ip: &str) -> Result<()> {
        let r = pb::LogoutReq {
            user_id: claims.user_id,
            jti: claims.jti.clone(),
            exp: claims.exp,
            iat: claims.iat,
            refresh_token: refresh_token.unwrap_or_default().into(),
            ip: ip.into(),
        };
        self.client.clone().logout(r).await.map(|_| ()).map_err(rsgame_rpc::error)
    }

    async fn change_password(&self, user_id: i64, old: String, new: String, ip: &str) -> Result<Tokens> {
        let r = pb::ChangePasswordReq { user_id, old_password: old, new_password: new, ip: ip.into() };
        self.client.clone().change_password(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn logout_all(&self, user_id: i64, ip: &str) -> Result<()> {
        let r = pb::LogoutAllReq { user_id, ip: ip.into() };
        self.client.clone().logout_all(r).await.map(|_| ()).map_err(rsgame_rpc::error)
    }

    async fn scan_create(&self, ip: &str) -> Result<ScanTicket> {
        let t = self
            .client
            .clone()
            .scan_create(pb::ScanCreateReq { ip: ip.into() })
            .await
            .map_err(rsgame_rpc::error)?
            .into_inner();
        Ok(ScanTicket { value: t.value, qr: t.qr, expire_time: t.expire_time })
    }

    async fn scan_confirm(&self, user_id: i64, value: &str, ip: &str) -> Result<()> {
        let r = pb::ScanConfirmReq { user_id, value: value.into(), ip: ip.into() };
        self.client.clone().scan_confirm(r).await.map(|_| ()).map_err(rsgame_rpc::error)
    }

    async fn login_scan(&self, value: &str, ip: &str) -> Result<Tokens> {
        let r = pb::LoginScanReq { value: value.into(), ip: ip.into() };
        self.client.clone().login_scan(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn generate_token(&self, user_id: i64) -> Result<Tokens> {
        let r = pb::GenerateTokenReq { user_id };
        self.client.clone().generate_token(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn user_by_auth_key(&self, auth_key: &str, auth_type: &str) -> Result<UserInfo> {
        let r = pb::GetUserAuthByAuthKeyReq { auth_key: auth_key.into(), auth_type: auth_type.into() };
        let r = self.client.clone().get_user_auth_by_auth_key(r).await.map_err(rsgame_rpc::error)?;
        r.into_inner().user.map(from_user).ok_or_else(missing)
    }

    async fn login_code(&self, req: CodeLoginReq, ip: &str) -> Result<Tokens> {
        let r = pb::LoginCodeReq { target: req.target, code: req.code, key: req.key, ip: ip.into() };
        self.client.clone().login_code(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn login_wechat(&self, req: WechatLoginReq, ip: &str) -> Result<Tokens> {
        let r = pb::LoginWechatReq { code: req.code, ip: ip.into() };
        self.client.clone().login_wechat(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn reset_password(&self, req: ResetPasswordReq, ip: &str) -> Result<Tokens> {
        let r = pb::ResetPasswordReq {
            target: req.target,
            code: req.code,
            key: req.key,
            new_password: req.new,
            ip: ip.into(),
        };
        self.client.clone().reset_password(r).await.map(|r| from_tokens(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn bind(&self, user_id: i64, req: BindReq, ip: &str) -> Result<()> {
        let r = pb::BindReq {
            user_id,
            kind: req.kind,
            device_id: req.device_id,
            target: req.target,
            code: req.code,
            key: req.key,
            username: req.username,
            password: req.password,
            ip: ip.into(),
        };
        self.client.clone().bind(r).await.map(|_| ()).map_err(rsgame_rpc::error)
    }

    async fn unbind(&self, user_id: i64, req: UnbindReq, ip: &str) -> Result<()> {
        let r = pb::UnbindReq { user_id, kind: req.kind, device_id: req.device_id, ip: ip.into() };
        self.client.clone().unbind(r).await.map(|_| ()).map_err(rsgame_rpc::error)
    }

    async fn detail(&self, user_id: i64) -> Result<(UserInfo, Vec<IdentityInfo>)> {
        let r = self.client.clone().detail(pb::DetailReq { user_id }).await.map_err(rsgame_rpc::error)?.into_inner();
        let list =
            r.identities.into_iter().map(|i| IdentityInfo { kind: i.kind, hint: i.hint, created_at: i.created_at });
        Ok((r.user.map(from_user).ok_or_else(missing)?, list.collect()))
    }

    async fn profiles(&self, ids: &[i64]) -> Result<Vec<crate::logic::PublicProfile>> {
        let r = self.client.clone().profiles(pb::ProfilesReq { user_ids: ids.to_vec() }).await;
        let r = r.map_err(rsgame_rpc::error)?.into_inner();
        Ok(r.profiles
            .into_iter()
            .map(|p| crate::logic::PublicProfile { user_id: p.user_id, nickname: p.nickname, avatar: p.avatar })
            .collect())
    }

    async fn update_profile(&self, user_id: i64, req: ProfileReq) -> Result<UserInfo> {
        let r = pb::UpdateProfileReq { user_id, nickname: req.nickname, avatar: req.avatar, sex: req.sex };
        let r = self.client.clone().update_profile(r).await.map_err(rsgame_rpc::error)?;
        r.into_inner().user.map(from_user).ok_or_else(missing)
    }

    async fn delete_account(&self, user_id: i64, issued_ms: i64, ip: &str) -> Result<()> {
        let r = pb::DeleteAccountReq { user_id, issued_ms, ip: ip.into() };
        self.client.clone().delete_account(r).await.map(|_| ()).map_err(rsgame_rpc::error)
    }
}
