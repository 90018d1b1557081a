// Message bodies on the wire: protobuf inside frames (the default, what go-game's clients
// speak), or WebSocket JSON text messages `{"id": N, "data": {...}}` (docs/protocol.md).
// Either way the game sees the same decoded objects: JSON is normalised through the same
// generated classes, so missing fields read as their defaults.
// int64 fields are plain numbers: src/gen/game.js switches protobufjs' Long off (scripts/gen.mjs).
import { BODIES } from "./gen/protocol.js";
import { FrameReader, encodeFrame } from "./frame.js";
import type { Data } from "./transport.js";

export type Wire = "protobuf" | "json";

/** One decoded message, or one that did not decode (reported, then skipped). */
export type Decoded = { id: number; msg: unknown } | { id: number; error: string };

/** A connection's codec: JSON is stateless; protobuf keeps the partial frame between chunks. */
export class Codec {
  private reader = new FrameReader();

  constructor(readonly wire: Wire) {}

  encode(id: number, msg: object): Data {
    const body = BODIES[id];
    if (!body) throw new Error(`message id ${id} has no body type`);
    if (this.wire === "json") return JSON.stringify({ id, data: msg }, bytesAsArrays);
    return encodeFrame(id, body.encode(msg).finish());
  }

  /** Every message in `data`; throws `FrameError` when the byte stream cannot be trusted. */
  decode(data: Data): Decoded[] {
    if (typeof data === "string") {
      const one = decodeJson(data);
      return one ? [one] : [];
    }
    const out: Decoded[] = [];
    for (const [id, bytes] of this.reader.push(data)) {
      const body = BODIES[id];
      if (!body) continue; // a newer server's message: ignore it, as proto3 clients do
      try {
        out.push({ id, msg: body.decode(bytes) });
      } catch (e) {
        out.push({ id, error: String(e) });
      }
    }
    return out;
  }
}

// The server's JSON carries `bytes` fields as arrays of numbers (serde's Vec<u8>).
function bytesAsArrays(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? Array.from(value) : value;
}

function decodeJson(text: string): Decoded | null {
  let parsed: { id?: unknown; data?: unknown };
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { id: 0, error: `not JSON: ${String(e)}` };
  }
  const id = Number(parsed?.id);
  const body = BODIES[id];
  if (!body) return null; // a newer server's message
  try {
    // Through the generated class: the same object (defaults, Uint8Array bytes) as protobuf.
    return { id, msg: body.decode(body.encode((parsed.data ?? {}) as object).finish()) };
  } catch (e) {
    return { id, error: String(e) };
  }
}
