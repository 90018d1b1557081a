// How bytes reach a game node: one small interface, so the socket's logic (login, heartbeat,
// reconnect, pairing) is the same over a browser WebSocket, a WeChat socket or Node's TCP.

/** A binary chunk (a stream of frames) or a JSON text message. */
export type Data = Uint8Array | string;

/** What a transport reports about one connection. */
export interface LinkEvents {
  open(): void;
  message(data: Data): void;
  /** The connection ended; called once, also after a failed connect. */
  close(code: number, reason: string): void;
}

/** One open (or opening) connection. */
export interface Link {
  send(data: Data): void;
  close(code?: number, reason?: string): void;
}

export interface Transport {
  connect(url: string, on: LinkEvents): Link;
}

/** The part of the WHATWG WebSocket the SDK uses (browsers, Laya, Cocos, Node 22, `ws`). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | ArrayBuffer | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

/**
 * WebSocket: binary messages carry frames, text messages JSON. `ctor` defaults to the global
 * `WebSocket` (browsers, Laya, Cocos Creator, Node ≥ 22); in older Node pass `ws`'s.
 */
export function webSocketTransport(ctor?: WebSocketCtor): Transport {
  return {
    connect(url, on) {
      const Ctor = ctor ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
      if (!Ctor) throw new Error("no WebSocket here: pass a constructor to webSocketTransport()");
      const ws = new Ctor(url);
      ws.binaryType = "arraybuffer";
      let closed = false;
      const end = (code: number, reason: string) => {
        if (closed) return;
        closed = true;
        on.close(code, reason);
      };
      ws.onopen = () => on.open();
      ws.onmessage = (ev) => {
        const d = ev.data;
        if (typeof d === "string") on.message(d);
        else if (d instanceof ArrayBuffer) on.message(new Uint8Array(d));
        else if (ArrayBuffer.isView(d)) on.message(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      };
      ws.onclose = (ev) => end(ev.code, ev.reason);
      // An error is followed by a close in browsers; not always elsewhere.
      ws.onerror = () => end(1006, "connection failed");
      return {
        send: (data) => ws.send(data),
        close: (code = 1000, reason = "") => {
          try {
            ws.close(code, reason);
          } catch {
            ws.close();
          }
          end(code, reason);
        },
      };
    },
  };
}
