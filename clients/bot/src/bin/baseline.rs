//! The baseline for gate benchmarks: the smallest reasonable tokio server of the same zinx
//! frames, over TCP and WebSocket. It answers each frame with the same body under id + 1000
//! (Ping 1000 → 2000) without decoding it. rsgame is measured against this, not against zinx.
//!
//! `bench-baseline --tcp 127.0.0.1:7999 --ws 127.0.0.1:7888`

use std::net::SocketAddr;

use bytes::{Buf, BufMut, BytesMut};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// TCP address to serve.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// WebSocket address to serve (any path).
    #[arg(long)]
    ws: Option<SocketAddr>,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        if let Some(addr) = args.tcp {
            let l = TcpListener::bind(addr).await?;
            tasks.push(tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(tcp_conn(s));
                }
            }));
        }
        if let Some(addr) = args.ws {
            let l = TcpListener::bind(addr).await?;
            tasks.push(tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(ws_conn(s));
                }
            }));
        }
        println!("baseline ready");
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    })
}

/// Rewrites every whole frame in `input` into `out` with id + 1000.
fn answer(input: &mut BytesMut, out: &mut BytesMut) {
    while input.len() >= 8 {
        let len = u32::from_be_bytes([input[4], input[5], input[6], input[7]]) as usize;
        if input.len() < 8 + len {
            break;
        }
        let id = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
        input.advance(8);
        out.put_u32(id + 1000);
        out.put_u32(len as u32);
        out.put_slice(&input[..len]);
        input.advance(len);
    }
}

async fn tcp_conn(mut s: TcpStream) {
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    loop {
        match s.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        answer(&mut input, &mut out);
        if !out.is_empty() && s.write_all_buf(&mut out).await.is_err() {
            return;
        }
    }
}

async fn ws_conn(s: TcpStream) {
    // A minimal server still sizes its buffers for small messages (tungstenite's defaults are
    // 128 KiB, which would flatter rsgame's memory figures).
    let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(s, Some(cfg)).await else { return };
    let (mut sink, mut stream) = ws.split();
    let mut input = BytesMut::new();
    while let Some(Ok(msg)) = stream.next().await {
        if let Message::Binary(b) = msg {
            input.extend_from_slice(&b);
            let mut out = BytesMut::new();
            answer(&mut input, &mut out);
            if !out.is_empty() && sink.send(Message::Binary(out.freeze())).await.is_err() {
                return;
            }
        }
    }
}
