//! A game client for bots and end-to-end tests: zinx frames with protobuf bodies over TCP or
//! WebSocket, or JSON text messages over WebSocket, plus the few REST calls a player makes
//! before it connects.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use rsgame_proto::{ids, pb};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long [`Client::login`] waits for the server's UserInfo.
pub const LOGIN_WAIT: Duration = Duration::from_secs(10);

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(String),
    /// Nothing with the awaited id arrived in time.
    #[error("timed out waiting for message {0}")]
    Timeout(u32),
    /// The server answered with an ErrorResp.
    #[error("server error {code} for {req_id}: {msg}")]
    Server {
        /// The message id that failed.
        req_id: u32,
        /// rsgame's code.
        code: i32,
        /// Its message.
        msg: String,
    },
    /// A body that does not decode.
    #[error("decode: {0}")]
    Decode(String),
}

/// The message traits a client sends and receives: protobuf and serde both.
pub trait Msg: prost::Message + Default + Serialize + DeserializeOwned + Send + 'static {}
impl<T: prost::Message + Default + Serialize + DeserializeOwned + Send + 'static> Msg for T {}

/// How the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Zinx frames (id, length, body) with protobuf bodies over TCP.
    Tcp,
    /// The same frames over KCP (UDP).
    Kcp,
    /// Zinx frames with protobuf bodies in binary WebSocket messages.
    WsProto,
    /// `{"id":…,"data":{…}}` WebSocket text messages.
    WsJson,
}

enum Writer {
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
    Ws(SplitSink<Ws, WsMessage>),
}

/// One connection.
pub struct Client {
    wire: Wire,
    writer: Writer,
    /// Id, body, and the bytes the message took on the wire (for the bots' bandwidth).
    inbox: mpsc::UnboundedReceiver<(u32, Vec<u8>, usize)>,
    /// The reader task; it holds the read half, so dropping the client must stop it for
    /// the connection to close.
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn frame(id: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + body.len());
    b.put_u32(id);
    b.put_u32(body.len() as u32);
    b.extend_from_slice(body);
    b
}

fn split_frames(buf: &mut BytesMut, out: &mpsc::UnboundedSender<(u32, Vec<u8>, usize)>) -> bool {
    while buf.len() >= 8 {
        let id = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            break;
        }
        buf.advance(8);
        let body = buf.split_to(len).to_vec();
        if out.send((id, body, 8 + len)).is_err() {
            return false;
        }
    }
    true
}

impl Client {
    /// Connects to the gate's TCP port.
    pub async fn tcp(addr: &str) -> Result<Client, ClientError> {
        Client::tcp_from(addr, None).await
    }

    /// Connects to the gate's TCP port from a chosen local address (many 127.0.0.x sources
    /// get past the ephemeral port range of one).
    pub async fn tcp_from(addr: &str, source: Option<std::net::IpAddr>) -> Result<Client, ClientError> {
        let io = |e: std::io::Error| ClientError::Io(e.to_string());
        let target: std::net::SocketAddr = addr.parse().map_err(|e| ClientError::Io(format!("{addr}: {e}")))?;
        let socket = if target.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(io)?;
        if let Some(ip) = source {
            socket.bind(std::net::SocketAddr::new(ip, 0)).map_err(io)?;
        }
        let s = socket.connect(target).await.map_err(io)?;
        let _ = s.set_nodelay(true);
        Ok(Client::stream(s, Wire::Tcp))
    }

    /// Connects to the gate's KCP port.
    pub async fn kcp(addr: &str) -> Result<Client, ClientError> {
        let target: std::net::SocketAddr = addr.parse().map_err(|e| ClientError::Io(format!("{addr}: {e}")))?;
        let cfg = tokio_kcp::KcpConfig {
            nodelay: tokio_kcp::KcpNoDelayConfig::fastest(),
            stream: true,
            flush_write: true,
            flush_acks_input: true,
            ..Default::default()
        };
        let io = |e: std::io::Error| ClientError::Io(e.to_string());
        let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let udp = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
        // The gate opens a session only for the conversation id it gave this address.
        let conv = rsgame_gate::kcp::ask_conv(&udp, target, Duration::from_secs(5)).await.map_err(io)?;
        let s = tokio_kcp::KcpStream::connect_with_socket_conv(&cfg, conv, udp, target)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        Ok(Client::stream(s, Wire::Kcp))
    }

    fn stream<S: AsyncRead + AsyncWrite + Send + 'static>(s: S, wire: Wire) -> Client {
        let (mut r, w) = tokio::io::split(s);
        let (tx, inbox) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(16 * 1024);
            loop {
                match r.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if !split_frames(&mut buf, &tx) {
                            return;
                        }
                    }
                }
            }
        });
        Client { wire, writer: Writer::Stream(Box::new(w)), inbox, reader }
    }

    /// Connects to `ws://host:port/ws`, speaking protobuf frames or JSON text.
    pub async fn ws(url: &str, json: bool) -> Result<Client, ClientError> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| ClientError::Io(e.to_string()))?;
        let (w, r): (SplitSink<Ws, WsMessage>, SplitStream<Ws>) = ws.split();
        let (tx, inbox) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut r = r;
            let mut buf = BytesMut::new();
            while let Some(Ok(m)) = r.next().await {
                match m {
                    WsMessage::Binary(b) => {
                        buf.extend_from_slice(&b);
                        if !split_frames(&mut buf, &tx) {
                            return;
                        }
                    }
                    WsMessage::Text(t) => {
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else { continue };
                        let id = v["id"].as_u64().unwrap_or(0) as u32;
                        let body = serde_json::to_vec(&v["data"]).unwrap_or_default();
                        if tx.send((id, body, t.len())).is_err() {
                            return;
                        }
                    }
                    WsMessage::Close(_) => return,
                    _ => {}
                }
            }
        });
        Ok(Client { wire: if json { Wire::WsJson } else { Wire::WsProto }, writer: Writer::Ws(w), inbox, reader })
    }

    /// How this client speaks.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Sends message `id`.
    pub async fn send<M: Msg>(&mut self, id: u32, msg: &M) -> Result<(), ClientError> {
        let io = |e: String| ClientError::Io(e);
        match (&mut self.writer, self.wire) {
            (Writer::Stream(w), _) => {
                w.write_all(&frame(id, &msg.encode_to_vec())).await.map_err(|e| io(e.to_string()))
            }
            (Writer::Ws(w), Wire::WsJson) => {
                let text = serde_json::json!({"id": id, "data": msg}).to_string();
                w.send(WsMessage::Text(text.into())).await.map_err(|e| io(e.to_string()))
            }
            (Writer::Ws(w), _) => {
                w.send(WsMessage::Binary(frame(id, &msg.encode_to_vec()).into())).await.map_err(|e| io(e.to_string()))
            }
        }
    }

    /// Sends raw bytes (tests of bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match &mut self.writer {
            Writer::Stream(w) => w.write_all(bytes).await.map_err(|e| ClientError::Io(e.to_string())),
            Writer::Ws(w) => {
                w.send(WsMessage::Binary(bytes.to_vec().into())).await.map_err(|e| ClientError::Io(e.to_string()))
            }
        }
    }

    /// Decodes a body in this client's format.
    pub fn decode<M: Msg>(&self, body: &[u8]) -> Result<M, ClientError> {
        match self.wire {
            Wire::WsJson => serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string())),
            _ => M::decode(body).map_err(|e| ClientError::Decode(e.to_string())),
        }
    }

    /// The next message, or None when the connection closed or nothing came in `within`.
    pub async fn next(&mut self, within: Duration) -> Option<(u32, Vec<u8>)> {
        self.next_sized(within).await.map(|(id, body, _)| (id, body))
    }

    /// [`Client::next`] with the bytes the message took on the wire: its zinx frame (header
    /// and body; over WebSocket without the WebSocket framing), or a JSON message's text.
    pub async fn next_sized(&mut self, within: Duration) -> Option<(u32, Vec<u8>, usize)> {
        tokio::time::timeout(within, self.inbox.recv()).await.ok().flatten()
    }

    /// Whether the server closes the connection within `within` (what it sends first is
    /// skipped).
    pub async fn closed(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async { while self.inbox.recv().await.is_some() {} }).await.is_ok()
    }

    /// Waits for message `id`, skipping others; an ErrorResp first is returned as an error.
    pub async fn wait<M: Msg>(&mut self, id: u32, within: Duration) -> Result<M, ClientError> {
        self.wait_where(id, within, |_: &M| true).await
    }

    /// Waits for message `id` whose body satisfies `ok`, skipping others.
    pub async fn wait_where<M: Msg>(
        &mut self,
        id: u32,
        within: Duration,
        ok: impl Fn(&M) -> bool,
    ) -> Result<M, ClientError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (got, body, _) = match tokio::time::timeout(left, self.inbox.recv()).await {
                Err(_) => return Err(ClientError::Timeout(id)),
                Ok(None) => return Err(ClientError::Io("closed".into())),
                Ok(Some(m)) => m,
            };
            if got == id {
                let m: M = self.decode(&body)?;
                if ok(&m) {
                    return Ok(m);
                }
            } else if got == ids::ERROR {
                let e: pb::ErrorResp = self.decode(&body)?;
                return Err(ClientError::Server { req_id: e.req_id, code: e.code, msg: e.msg });
            }
        }
    }

    /// Sends GameLogin and waits for UserInfo, at most [`LOGIN_WAIT`]: then
    /// [`ClientError::Timeout`].
    pub async fn login(&mut self, user_id: i64, token: &str) -> Result<pb::UserInfo, ClientError> {
        let m = pb::GameLogin { user_id, token: token.into(), plat: "bot".into(), param: "caps=all".into() };
        self.send(ids::GAME_LOGIN, &m).await?;
        self.wait(ids::reply(ids::GAME_LOGIN), LOGIN_WAIT).await
    }
}

/// A minimal HTTP/1.1 GET of `path` on `host:port`; returns the body (metrics scrapes).
pub async fn get(addr: &str, path: &str) -> Result<String, ClientError> {
    let io = |e: std::io::Error| ClientError::Io(e.to_string());
    let mut s = TcpStream::connect(addr).await.map_err(io)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(io)?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .map_err(|_| ClientError::Timeout(0))?
        .map_err(io)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// A minimal HTTP/1.1 JSON POST to `host:port`; returns the envelope.
pub async fn post(
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ClientError> {
    let io = |e: std::io::Error| ClientError::Io(e.to_string());
    let mut s = TcpStream::connect(addr).await.map_err(io)?;
    let body = body.to_string();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .map_err(|_| ClientError::Timeout(0))?
        .map_err(io)?;
    let text = String::from_utf8_lossy(&out);
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Bodies are short JSON; a chunked reply would carry a size line first.
    let json = json.trim_start_matches(|c: char| c.is_ascii_hexdigit()).trim();
    let json = json.split("\r\n0").next().unwrap_or(json);
    serde_json::from_str(json).map_err(|e| ClientError::Decode(format!("{e}: {text}")))
}

/// An account a bot or test plays with.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its id.
    pub user_id: i64,
    /// Its access token.
    pub token: String,
    /// The game servers the token reply listed (WebSocket URLs, the player's node first);
    /// empty when the token was made without REST.
    pub servers: Vec<String>,
}

/// A REST call, tried again with backoff (for up to half a minute) while the server answers
/// that it is busy: rate-limited (400502) or shedding load (400503), as a polite client does.
async fn post_patiently(
    http: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Result<serde_json::Value, ClientError> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut wait = Duration::from_millis(100);
    loop {
        let v = post(http, path, token, body).await?;
        let busy = v["code"] == 400_502 || v["code"] == 400_503;
        if !busy || tokio::time::Instant::now() + wait > give_up {
            return Ok(v);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Registers `username` (or logs in when it exists) over REST and reads its id.
pub async fn account(http: &str, username: &str, password: &str) -> Result<Account, ClientError> {
    let creds = serde_json::json!({"username": username, "password": password, "nickname": username});
    let mut v = post_patiently(http, "/usercenter/v1/user/register", None, &creds).await?;
    if v["code"] == 400_506 {
        v = post_patiently(http, "/usercenter/v1/user/login", None, &creds).await?;
    }
    let token =
        v["data"]["accessToken"].as_str().ok_or_else(|| ClientError::Decode(format!("no token: {v}")))?.to_owned();
    let d = post(http, "/usercenter/v1/user/detail", Some(&token), &serde_json::json!({})).await?;
    let user_id = d["data"]["userInfo"]["id"].as_i64().ok_or_else(|| ClientError::Decode(format!("no id: {d}")))?;
    let servers = v["data"]["servers"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(Account { user_id, token, servers })
}
