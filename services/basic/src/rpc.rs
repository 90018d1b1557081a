//! basic over gRPC: [`BasicRpc`] serves any [`Basic`]; [`RemoteBasic`] calls one and
//! implements the same trait.

use std::sync::Arc;

use rsgame_kit::Result;
use rsgame_rpc::pb::basic as pb;
use rsgame_rpc::pb::basic::basic_client::BasicClient;
use rsgame_rpc::pb::basic::basic_server::{Basic as BasicService, BasicServer};
use tonic::{Request, Response, Status};

use crate::{Basic, CaptchaImage, CodeTicket, FileInfo, FileList, NewFile, SendCodeReq};

type Reply<T> = std::result::Result<Response<T>, Status>;

fn ok<T>(r: Result<T>) -> Reply<T> {
    r.map(Response::new).map_err(rsgame_rpc::status)
}

fn file(f: FileInfo) -> pb::FileInfo {
    pb::FileInfo {
        guid: f.guid,
        name: f.name,
        media_type: f.media_type,
        ext: f.ext,
        size: f.size,
        md5: f.md5,
        sha1: f.sha1,
        downloads: f.downloads,
        created_at: f.created_at,
        url: f.url,
    }
}

fn from_file(f: pb::FileInfo) -> FileInfo {
    FileInfo {
        guid: f.guid,
        name: f.name,
        media_type: f.media_type,
        ext: f.ext,
        size: f.size,
        md5: f.md5,
        sha1: f.sha1,
        downloads: f.downloads,
        created_at: f.created_at,
        url: f.url,
    }
}

/// The gRPC server over a [`Basic`].
pub struct BasicRpc(pub Arc<dyn Basic>);

impl BasicRpc {
    /// The tonic service.
    pub fn service(svc: Arc<dyn Basic>) -> BasicServer<BasicRpc> {
        BasicServer::new(BasicRpc(svc))
    }
}

#[tonic::async_trait]
impl BasicService for BasicRpc {
    async fn captcha(&self, r: Request<pb::CaptchaReq>) -> Reply<pb::CaptchaResp> {
        ok(self.0.captcha(&r.into_inner().ip).await.map(|c| pb::CaptchaResp {
            image: c.image,
            key: c.key,
            expire_time: c.expire_time,
            length: c.length,
        }))
    }

    async fn send_code(&self, r: Request<pb::SendCodeReq>) -> Reply<pb::SendCodeResp> {
        let r = r.into_inner();
        let req = SendCodeReq {
            send_type: r.send_type,
            phone: r.phone,
            verily_type: r.verily_type,
            key: r.key,
            code: r.code,
        };
        ok(self.0.send_code(req, &r.ip).await.map(|t| pb::SendCodeResp { key: t.key, expire_time: t.expire_time }))
    }

    async fn verify_captcha(&self, r: Request<pb::VerifyReq>) -> Reply<pb::StatusResp> {
        let r = r.into_inner();
        ok(self.0.verify_captcha(&r.key, &r.code).await.map(|status| pb::StatusResp { status }))
    }

    async fn verify_code(&self, r: Request<pb::VerifyReq>) -> Reply<pb::StatusResp> {
        let r = r.into_inner();
        ok(self.0.verify_code(&r.key, &r.code).await.map(|status| pb::StatusResp { status }))
    }

    async fn use_code(&self, r: Request<pb::UseCodeReq>) -> Reply<pb::StatusResp> {
        let r = r.into_inner();
        ok(self.0.use_code(&r.key, &r.code, &r.target, r.verily_type).await.map(|status| pb::StatusResp { status }))
    }

    async fn file_detail(&self, r: Request<pb::FileReq>) -> Reply<pb::FileInfo> {
        let r = r.into_inner();
        ok(self.0.file_detail(r.user_id, &r.value).await.map(file))
    }

    async fn file_by_md5(&self, r: Request<pb::FileReq>) -> Reply<pb::FileInfo> {
        let r = r.into_inner();
        ok(self.0.file_by_md5(r.user_id, &r.value).await.map(file))
    }

    async fn file_list(&self, r: Request<pb::FileListReq>) -> Reply<pb::FileListResp> {
        let r = r.into_inner();
        ok(self.0.file_list(r.user_id, r.page, r.page_size, &r.key).await.map(|l| pb::FileListResp {
            list: l.list.into_iter().map(file).collect(),
            total: l.total,
            page: l.page,
            page_size: l.page_size,
        }))
    }

    async fn delete_files(&self, r: Request<pb::DeleteFilesReq>) -> Reply<pb::DeleteFilesResp> {
        let r = r.into_inner();
        ok(self.0.delete_files(r.user_id, &r.guids).await.map(|deleted| pb::DeleteFilesResp { deleted }))
    }

    async fn add_file(&self, r: Request<pb::AddFileReq>) -> Reply<pb::FileInfo> {
        let r = r.into_inner();
        let f = NewFile {
            user_id: r.user_id,
            name: r.name,
            ext: r.ext,
            path: r.path,
            size: r.size,
            md5: r.md5,
            sha1: r.sha1,
            driver: r.driver,
        };
        ok(self.0.add_file(f).await.map(file))
    }
}

/// A basic service reached over gRPC.
#[derive(Clone)]
pub struct RemoteBasic {
    client: BasicClient<rsgame_rpc::RpcChannel>,
}

impl RemoteBasic {
    /// The methods that read or set a value, which a retry cannot apply twice.
    pub const IDEMPOTENT: &'static [&'static str] = &["FileDetail", "FileByMd5", "FileList"];

    /// A client over `connector`'s channel to `url` (`http://host:port`, a list, or `etcd`).
    pub fn connect(connector: &rsgame_rpc::Connector, url: &str) -> Result<RemoteBasic> {
        Ok(RemoteBasic::over(connector.channel("basic", url, Self::IDEMPOTENT)?))
    }

    /// A client over `channel`.
    pub fn over(channel: rsgame_rpc::RpcChannel) -> RemoteBasic {
        RemoteBasic { client: BasicClient::new(channel) }
    }
}

#[async_trait::async_trait]
impl Basic for RemoteBasic {
    async fn captcha(&self, ip: &str) -> Result<CaptchaImage> {
        let c = self
            .client
            .clone()
            .captcha(pb::CaptchaReq { ip: ip.into() })
            .await
            .map_err(rsgame_rpc::error)?
            .into_inner();
        Ok(CaptchaImage { image: c.image, key: c.key, expire_time: c.expire_time, length: c.length })
    }

    async fn verify_captcha(&self, key: &str, code: &str) -> Result<bool> {
        let r = pb::VerifyReq { key: key.into(), code: code.into() };
        self.client.clone().verify_captcha(r).await.map(|r| r.into_inner().status).map_err(rsgame_rpc::error)
    }

    async fn send_code(&self, req: SendCodeReq, ip: &str) -> Result<CodeTicket> {
        let r = pb::SendCodeReq {
            send_type: req.send_type,
            phone: req.phone,
            verily_type: req.verily_type,
            key: req.key,
            code: req.code,
            ip: ip.into(),
        };
        let t = self.client.clone().send_code(r).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(CodeTicket { key: t.key, expire_time: t.expire_time })
    }

    async fn verify_code(&self, key: &str, code: &str) -> Result<bool> {
        let r = pb::VerifyReq { key: key.into(), code: code.into() };
        self.client.clone().verify_code(r).await.map(|r| r.into_inner().status).map_err(rsgame_rpc::error)
    }

    async fn use_code(&self, key: &str, code: &str, target: &str, verily_type: i32) -> Result<bool> {
        let r = pb::UseCodeReq { key: key.into(), code: code.into(), target: target.into(), verily_type };
        self.client.clone().use_code(r).await.map(|r| r.into_inner().status).map_err(rsgame_rpc::error)
    }

    async fn file_detail(&self, user_id: i64, guid: &str) -> Result<FileInfo> {
        let r = pb::FileReq { user_id, value: guid.into() };
        self.client.clone().file_detail(r).await.map(|r| from_file(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn file_by_md5(&self, user_id: i64, md5: &str) -> Result<FileInfo> {
        let r = pb::FileReq { user_id, value: md5.into() };
        self.client.clone().file_by_md5(r).await.map(|r| from_file(r.into_inner())).map_err(rsgame_rpc::error)
    }

    async fn file_list(&self, user_id: i64, page: i64, page_size: i64, key: &str) -> Result<FileList> {
        let r = pb::FileListReq { user_id, page, page_size, key: key.into() };
        let l = self.client.clone().file_list(r).await.map_err(rsgame_rpc::error)?.into_inner();
        Ok(FileList {
            list: l.list.into_iter().map(from_file).collect(),
            total: l.total,
            page: l.page,
            page_size: l.page_size,
        })
    }

    async fn delete_files(&self, user_id: i64, guids: &[String]) -> Result<u64> {
        let r = pb::DeleteFilesReq { user_id, guids: guids.to_vec() };
        self.client.clone().delete_files(r).await.map(|r| r.into_inner().deleted).map_err(rsgame_rpc::error)
    }

    async fn add_file(&self, f: NewFile) -> Result<FileInfo> {
        let r = pb::AddFileReq {
            user_id: f.user_id,
            name: f.name,
            ext: f.ext,
            path: f.path,
            size: f.size,
            md5: f.md5,
            sha1: f.sha1,
            driver: f.driver,
        };
        self.client.clone().add_file(r).await.map(|r| from_file(r.into_inner())).map_err(rsgame_rpc::error)
    }
}
