// Node's transports: the gate's TCP port (a stream of frames, what go-game's clients and the
// bots use), for bots, load tools and tests. `@rsgame/client/node`.
import { connect as tcpConnect } from "node:net";
import type { Transport } from "./transport.js";

/** TCP to `tcp://host:port` (the gate's `gate.tcp_port`, 8999 by default). Protobuf only. */
export function tcpTransport(): Transport {
  return {
    connect(url, on) {
      const m = /^tcp:\/\/([^:/]+|\[[^\]]+\]):(\d+)\/?$/.exec(url);
      if (!m) throw new Error(`not a tcp://host:port URL: ${url}`);
      const sock = tcpConnect({ host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) });
      sock.setNoDelay(true);
      let closed = false;
      let why = "";
      const end = (code: number, reason: string) => {
        if (closed) return;
        closed = true;
        on.close(code, reason);
      };
      sock.on("connect", () => on.open());
      sock.on("data", (chunk: Buffer) => on.message(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
      sock.on("error", (e) => (why = e.message));
      sock.on("close", () => end(1006, why || "connection closed"));
      return {
        send(data) {
          if (typeof data === "string") throw new Error("TCP carries frames: use wire 'protobuf'");
          sock.write(data);
        },
        close(code = 1000, reason = "") {
          sock.end();
          sock.destroy();
          end(code, reason);
        },
      };
    },
  };
}

export * from "./index.js";
