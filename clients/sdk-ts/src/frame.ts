// zinx frames: an 8-byte header (message id u32 big-endian, body length u32 big-endian), then
// the body. The server coalesces frames into one write and a frame may span reads, so the
// reader parses a stream, never one frame per message.

/** The header's size in bytes. */
export const HEADER = 8;

/** Bodies larger than this are refused before they are buffered (the server's own limit is
 * `gate.max_body`, 64 KiB by default; lockstep catch-up bundles stay well below 1 MiB). */
export const MAX_BODY = 1 << 20;

/** One frame: the header, then `body`. */
export function encodeFrame(id: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, id, false);
  view.setUint32(4, body.length, false);
  out.set(body, HEADER);
  return out;
}

/** A frame the stream announced larger than {@link MAX_BODY}: the stream cannot be trusted. */
export class FrameError extends Error {}

/**
 * Splits a byte stream into frames. Bytes are appended to one growing buffer and consumed from
 * its front, so a burst of small frames costs one copy each, not a copy of everything pending.
 */
export class FrameReader {
  private buf = new Uint8Array(4096);
  private start = 0;
  private end = 0;

  constructor(private readonly maxBody = MAX_BODY) {}

  /** Appends `chunk` and returns every frame now complete, as `[id, body]`; bodies are copies. */
  push(chunk: Uint8Array): Array<[number, Uint8Array]> {
    this.append(chunk);
    const out: Array<[number, Uint8Array]> = [];
    while (this.end - this.start >= HEADER) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.start, HEADER);
      const id = view.getUint32(0, false);
      const len = view.getUint32(4, false);
      if (len > this.maxBody) throw new FrameError(`frame ${id} announces ${len} bytes`);
      if (this.end - this.start - HEADER < len) break;
      const at = this.start + HEADER;
      out.push([id, this.buf.slice(at, at + len)]);
      this.start = at + len;
    }
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
    return out;
  }

  /** Bytes held that are not yet a whole frame. */
  get pending(): number {
    return this.end - this.start;
  }

  private append(chunk: Uint8Array): void {
    if (this.buf.length - this.end < chunk.length) {
      const held = this.end - this.start;
      const need = held + chunk.length;
      if (need <= this.buf.length) {
        // Enough room once the consumed front is dropped.
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let size = this.buf.length;
        while (size < need) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this.buf.subarray(this.start, this.end), 0);
        this.buf = grown;
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
}
