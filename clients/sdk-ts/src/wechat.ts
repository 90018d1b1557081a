// WeChat mini-games: the socket over wx.connectSocket, REST over wx.request, the session in
// wx's storage. The same game code runs in a browser and in a mini-game; only these change.
// `@rsgame/client/wechat`.
import type { Http } from "./http.js";
import type { Session, SessionStore } from "./session.js";
import type { Transport } from "./transport.js";

/** The part of `wx` the SDK uses (so it needs no WeChat type package). */
export interface Wx {
  connectSocket(o: { url: string; fail?: (e: { errMsg: string }) => void }): WxSocketTask;
  request(o: {
    url: string;
    method: "GET" | "POST";
    header: Record<string, string>;
    data?: string | ArrayBuffer;
    dataType: string;
    responseType: "text";
    success(r: { statusCode: number; data: unknown }): void;
    fail(e: { errMsg: string }): void;
  }): void;
  getStorageSync(key: string): unknown;
  setStorageSync(key: string, value: unknown): void;
  removeStorageSync(key: string): void;
}

export interface WxSocketTask {
  onOpen(cb: () => void): void;
  onMessage(cb: (m: { data: string | ArrayBuffer }) => void): void;
  onClose(cb: (e: { code: number; reason: string }) => void): void;
  onError(cb: (e: { errMsg: string }) => void): void;
  send(o: { data: string | ArrayBuffer; fail?: (e: { errMsg: string }) => void }): void;
  close(o: { code?: number; reason?: string }): void;
}

/** The game socket over `wx.connectSocket` (wss:// only on a phone: list it in the mini-game's
 * socket domains). Binary frames or JSON text both work. */
export function wechatTransport(wx: Wx): Transport {
  return {
    connect(url, on) {
      let closed = false;
      const end = (code: number, reason: string) => {
        if (closed) return;
        closed = true;
        on.close(code, reason);
      };
      const task = wx.connectSocket({ url, fail: (e) => end(1006, e.errMsg) });
      task.onOpen(() => on.open());
      task.onMessage((m) => on.message(typeof m.data === "string" ? m.data : new Uint8Array(m.data)));
      task.onClose((e) => end(e.code, e.reason));
      task.onError((e) => end(1006, e.errMsg));
      return {
        send(data) {
          // wx sends an ArrayBuffer, not a view: hand it exactly the frame's bytes.
          const payload = typeof data === "string" ? data : toArrayBuffer(data);
          task.send({ data: payload, fail: (e) => end(1006, e.errMsg) });
        },
        close(code = 1000, reason = "") {
          task.close({ code, reason });
          end(code, reason);
        },
      };
    },
  };
}

/** wx sends an ArrayBuffer, not a view: exactly the view's bytes. */
function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** REST over `wx.request` (list the REST host in the mini-game's request domains). */
export function wechatHttp(wx: Wx): Http {
  return (req) =>
    new Promise((resolve, reject) => {
      wx.request({
        url: req.url,
        method: req.method,
        header: req.headers,
        data: typeof req.body === "string" || req.body === undefined ? req.body : toArrayBuffer(req.body),
        // Not "json": the client parses the envelope itself, the same way everywhere.
        dataType: "text",
        responseType: "text",
        success: (r) => resolve({ status: r.statusCode, text: typeof r.data === "string" ? r.data : JSON.stringify(r.data) }),
        fail: (e) => reject(new Error(e.errMsg)),
      });
    });
}

/** The session in the mini-game's storage (kept across launches). */
export function wechatStore(wx: Wx, key = "rsgame.session"): SessionStore {
  return {
    load() {
      const v = wx.getStorageSync(key);
      return v && typeof v === "object" ? (v as Session) : null;
    },
    save(s) {
      if (s) wx.setStorageSync(key, s);
      else wx.removeStorageSync(key);
    },
  };
}

export * from "./index.js";
