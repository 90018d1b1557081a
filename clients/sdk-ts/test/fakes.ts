// A clock that moves only when told, and a transport whose server side the test plays.
import { Codec } from "../src/codec.js";
import type { Clock } from "../src/clock.js";
import type { Data, Link, LinkEvents, Transport } from "../src/transport.js";

export class FakeClock implements Clock {
  t = 0;
  rand = 0.5;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private seq = 0;
  now = () => this.t;
  random = () => this.rand;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== h);
  };
  /** Moves time on, running every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
  /** When the next timer falls due, from now. */
  nextIn(): number | null {
    const at = Math.min(...this.timers.map((x) => x.at));
    return Number.isFinite(at) ? at - this.t : null;
  }
}

export class FakeLink implements Link {
  sent: Data[] = [];
  closed: { code: number; reason: string } | null = null;
  private codec: Codec;
  constructor(
    readonly url: string,
    readonly on: LinkEvents,
    wire: "protobuf" | "json",
  ) {
    this.codec = new Codec(wire);
  }
  send(d: Data): void {
    if (this.closed) throw new Error("send on a closed link");
    this.sent.push(d);
  }
  close(code = 1000, reason = ""): void {
    if (this.closed) return;
    this.closed = { code, reason };
    this.on.close(code, reason);
  }
  /** What the client sent, decoded. */
  messages(): Array<{ id: number; msg: any }> {
    const c = new Codec(this.codec.wire);
    return this.sent.flatMap((d) => c.decode(d)).map((d) => ({ id: d.id, msg: "msg" in d ? d.msg : null }));
  }
  /** The server sends. */
  push(id: number, msg: object): void {
    this.on.message(this.codec.encode(id, msg));
  }
  /** The server closes. */
  drop(code = 1006, reason = "gone"): void {
    if (this.closed) return;
    this.closed = { code, reason };
    this.on.close(code, reason);
  }
}

export class FakeTransport implements Transport {
  links: FakeLink[] = [];
  constructor(private wire: "protobuf" | "json" = "protobuf") {}
  connect(url: string, on: LinkEvents): Link {
    const l = new FakeLink(url, on, this.wire);
    this.links.push(l);
    return l;
  }
  get last(): FakeLink {
    const l = this.links[this.links.length - 1];
    if (!l) throw new Error("no link yet");
    return l;
  }
}

/** Lets pending promise callbacks run. */
export const settle = () => new Promise((r) => setImmediate(r));
