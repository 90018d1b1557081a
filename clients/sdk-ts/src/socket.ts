// The game connection: log in on every (re)connect, typed events for every push, requests
// paired with their replies, a heartbeat that notices a dead link, reconnection with backoff
// and jitter, and a clean stop when the account is taken over or its sessions end.
import { pb } from "./gen/game.js";
import { Code } from "./gen/rest.js";
import { MessageId, NAMES, REPLIES, type Inbound, type Outbound, type Replies } from "./gen/protocol.js";
import { Codec, type Wire } from "./codec.js";
import { systemClock, type Clock } from "./clock.js";
import { NO_ANSWER, RsgameError } from "./errors.js";
import { FrameError } from "./frame.js";
import type { Link, Transport } from "./transport.js";

/** What a (re)connection logs in with. */
export interface Credentials {
  userId: number;
  token: string;
  /** Which login of the player these come from (`Client` counts them), so that the end of an
   * older one (a password changed here ends every session before it) is not taken for ours. */
  login?: number;
}

/**
 * - `connecting`: opening a link or logging in;
 * - `online`: logged in (UserInfo received): sends go out at once;
 * - `offline`: the link dropped; a reconnect is scheduled;
 * - `stopped`: for good; see {@link StopReason}.
 */
export type Status = "connecting" | "online" | "offline" | "stopped";

/**
 * Why the socket stopped: `closed` (the game called stop()), `logout` (Logout answered),
 * `takeover` (the account logged in elsewhere: do not reconnect, the two would take the player
 * from each other forever), `ended` (the account's sessions were ended: a ban, a password
 * change, log out everywhere; log in again), `refused` (no credentials, or a token of another
 * account).
 */
export type StopReason = "closed" | "logout" | "takeover" | "ended" | "refused";

export interface SocketOptions {
  /** The game node: `ws://…`/`wss://…` (or `tcp://host:port` with Node's transport); a
   * function is asked at every attempt with the failures in a row so far (to move to another
   * node after some). */
  url: string | ((failures: number) => string | Promise<string>);
  transport: Transport;
  /**
   * Credentials for each login. `refused` is true when the previous token was refused
   * (ErrorResp 400103 to GameLogin): refresh it. Null stops the socket (`refused`).
   */
  credentials(refused: boolean): Promise<Credentials | null>;
  /**
   * Whether the player has logged in again since login `n` (its credentials' `login`): then
   * "sessions ended" (LogoutResp 4) ended the old session only, and the socket logs in anew
   * instead of stopping. `Client.socket()` supplies it.
   */
  renewedSince?: (n: number) => boolean;
  /** `protobuf` frames (default) or WebSocket JSON text messages. */
  wire?: Wire;
  /** Capabilities asked at login (docs/protocol.md); default `all`. */
  caps?: string;
  /** GameLogin.plat; default `sdk-ts`. */
  plat?: string;
  /** Ping every this many ms (default 5000); the link counts as dead after three silent. */
  heartbeatMs?: number;
  /** How long a request waits for its reply (default 10000 ms). Replies come in order, so a
   * request that goes unanswered means the link cannot be trusted: it is closed and remade. */
  requestTimeoutMs?: number;
  /** How long a connection may take to be logged in (default 15000 ms) before it is given up. */
  loginTimeoutMs?: number;
  /** Reconnect delays: first, doubling up to max, each ± jitter (default 500, 10000, 0.2). */
  backoff?: { firstMs?: number; maxMs?: number; jitter?: number };
  /** Requests kept while offline, sent after the next login (default 32). */
  queueLimit?: number;
  clock?: Clock;
  /** Where the socket tells what it did not deliver (default console.warn). */
  warn?: (msg: string) => void;
}

/** Messages that are worth nothing late: dropped while offline instead of queued. */
const STALE = new Set<number>([MessageId.Move, MessageId.Attack, MessageId.Respawn, MessageId.LockstepInput, MessageId.Ping]);

/** A connection that lasted this long was a success: the next drop starts backing off anew. */
const STABLE_MS = 30_000;

interface Pending {
  reqId: number;
  replyId: number;
  resolve(m: unknown): void;
  reject(e: RsgameError): void;
  timer: unknown;
  /** Sent on the current link (a drop fails it) or still queued (sent after the login). */
  sent: boolean;
  /** Timed out after it was sent: it keeps its place, so that its late answer is not taken
   * for the answer to the next request of its kind; the answer is then dropped. */
  expired?: boolean;
}

type Listener = (msg: never) => void;

export class Socket {
  private readonly o: Required<Omit<SocketOptions, "backoff" | "renewedSince">> &
    Pick<SocketOptions, "renewedSince"> & { backoff: Required<NonNullable<SocketOptions["backoff"]>> };
  private link: Link | null = null;
  private _status: Status = "stopped";
  private ready = false;
  private stopped = true;
  /** The backoff's exponent: failures in a row, capped. */
  private attempt = 0;
  /** Failures in a row, uncapped: which server to try. */
  private failures = 0;
  /** Bumped by every start and stop, so an open() that awaited across them gives up. */
  private generation = 0;
  /** Encodes what is sent (the link's own codec keeps the partial frame being read). */
  private encoder: Codec;
  private loginTimer: unknown = null;
  /** The `login` of the credentials the current link logged in with. */
  private loginOf: number | undefined;
  private onlineSince = 0;
  private lastHeard = 0;
  private refused = false;
  /** The ErrorResp (reqId 0) the server sends before it closes the link on purpose. */
  private closing: RsgameError | null = null;
  private retry: unknown = null;
  private beat: unknown = null;
  private sn = 0;
  private pingAt = new Map<number, number>();
  private queue: Array<{ id: number; data: ReturnType<Codec["encode"]>; pending?: Pending }> = [];
  private pending: Pending[] = [];
  private listeners = new Map<number, Set<Listener>>();
  private any = new Set<(id: number, msg: unknown) => void>();
  private statusListeners = new Set<(s: Status, detail: string) => void>();
  private errorListeners = new Set<(e: RsgameError) => void>();
  /** The last round trip of a Ping, ms. */
  rtt = 0;
  /** The last UserInfo: who and where the player is since the last login. */
  me: pb.UserInfo | null = null;
  /** Why the socket stopped, once it has. */
  stopReason: StopReason | null = null;

  constructor(opts: SocketOptions) {
    this.o = {
      wire: "protobuf",
      caps: "all",
      plat: "sdk-ts",
      heartbeatMs: 5000,
      requestTimeoutMs: 10_000,
      loginTimeoutMs: 15_000,
      queueLimit: 32,
      clock: systemClock,
      warn: (m) => (globalThis as { console?: { warn(m: string): void } }).console?.warn(`rsgame: ${m}`),
      ...opts,
      backoff: { firstMs: 500, maxMs: 10_000, jitter: 0.2, ...opts.backoff },
    };
    this.encoder = new Codec(this.o.wire);
  }

  get status(): Status {
    return this._status;
  }

  /** Logged in: what is sent goes out now. */
  get online(): boolean {
    return this.ready;
  }

  /** Connects and logs in; reconnects by itself until stopped. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopReason = null;
    this.attempt = 0;
    this.failures = 0;
    this.generation += 1;
    void this.open();
  }

  /** Closes for good: pending requests fail, the queue is dropped. */
  stop(reason: StopReason = "closed"): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopReason = reason;
    this.ready = false;
    this.generation += 1;
    this.o.clock.clearTimeout(this.retry);
    this.o.clock.clearTimeout(this.beat);
    this.o.clock.clearTimeout(this.loginTimer);
    const link = this.link;
    this.link = null;
    link?.close(1000, reason);
    this.failAll(new RsgameError(NO_ANSWER, `socket stopped (${reason})`), true);
    this.setStatus("stopped", reason);
  }

  /** Logs out of the game (the server saves the player), then stops. */
  async logout(): Promise<void> {
    try {
      if (this.ready) await this.request(MessageId.Logout, { type: pb.LogoutType.LOGOUT_TYPE_QUIT });
    } finally {
      this.stop("logout");
    }
  }

  /**
   * Sends a message. Online it goes out now; offline a request waits for the next login (up to
   * `queueLimit`), while what goes stale (moves, attacks, respawns, lockstep input) is dropped.
   * Returns whether it was sent or queued.
   */
  send<K extends keyof Outbound>(id: K, msg: Outbound[K]): boolean {
    return this.submit(id as number, msg as object);
  }

  /**
   * Sends a request and resolves with its reply (`REPLIES`: EnterRoom → EnterRoomResp…), or
   * rejects with the ErrorResp that refused it, a timeout (400504) or a dropped link.
   * Replies come in order, so requests of one kind are answered first in, first out.
   */
  request<K extends keyof Replies & keyof Outbound>(id: K, msg: Outbound[K], timeoutMs = this.o.requestTimeoutMs): Promise<Inbound[Replies[K]]> {
    return new Promise((resolve, reject) => {
      const p: Pending = {
        reqId: id as number,
        replyId: REPLIES[id],
        resolve: resolve as (m: unknown) => void,
        reject,
        timer: null,
        sent: false,
      };
      p.timer = this.o.clock.setTimeout(() => {
        reject(new RsgameError(Code.Timeout, `no answer to ${NAMES[p.reqId]} in ${timeoutMs} ms`, p.reqId));
        if (!p.sent) {
          this.forget(p);
          return;
        }
        // The server answers a session in order: an answer that did not come means the pairing
        // of every later reply is in doubt. Start a new link (what was sent on this one fails).
        p.expired = true;
        this.link?.close(4004, `no answer to ${NAMES[p.reqId]}`);
      }, timeoutMs);
      this.pending.push(p);
      let queued = false;
      try {
        queued = this.submit(id as number, msg as object, p);
      } catch (e) {
        this.forget(p);
        this.o.clock.clearTimeout(p.timer);
        reject(e);
        return;
      }
      if (!queued) {
        this.forget(p);
        this.o.clock.clearTimeout(p.timer);
        const why = this.stopped ? "the socket is stopped" : "offline and the queue is full";
        reject(new RsgameError(NO_ANSWER, `${NAMES[p.reqId]} not sent: ${why}`, p.reqId));
      }
    });
  }

  /** Every message of one id, typed: `on(MessageId.MoveResp, (m) => …)`. Returns an unsubscribe. */
  on<K extends keyof Inbound>(id: K, fn: (msg: Inbound[K]) => void): () => void {
    const set = this.listeners.get(id as number) ?? new Set();
    set.add(fn as Listener);
    this.listeners.set(id as number, set);
    return () => set.delete(fn as Listener);
  }

  /** Every message, decoded, with its id. */
  onMessage(fn: (id: number, msg: unknown) => void): () => void {
    this.any.add(fn);
    return () => this.any.delete(fn);
  }

  /** Status changes, with a reason (a close's reason, a stop's reason). */
  onStatus(fn: (s: Status, detail: string) => void): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  /** ErrorResps that answer no pending request (a refused Move, a chat while muted…). Those
   * about the connection (reqId 0, before the server closes it) are the detail of the status
   * that follows instead. */
  onError(fn: (e: RsgameError) => void): () => void {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }

  /** Drops the link as a network failure would (to test reconnection). */
  drop(): void {
    this.link?.close(4000, "dropped by the client");
  }

  // ---- the link -----------------------------------------------------------------------

  private async open(): Promise<void> {
    if (this.stopped) return;
    const generation = this.generation;
    this.setStatus("connecting", "");
    let cred: Credentials | null;
    let url: string;
    try {
      cred = await this.o.credentials(this.refused);
      url = typeof this.o.url === "string" ? this.o.url : await this.o.url(this.failures);
    } catch (e) {
      // No network for the refresh, say: a failed attempt like any other.
      if (generation === this.generation) this.lost(`credentials: ${String(e)}`);
      return;
    }
    // Stopped (or stopped and started again) while the token was being refreshed.
    if (generation !== this.generation) return;
    if (!cred) {
      this.stop("refused");
      return;
    }
    this.refused = false;
    this.closing = null;
    this.loginOf = cred.login;
    const codec = new Codec(this.o.wire);
    let link: Link | null = null;
    const mine = () => link !== null && this.link === link;
    try {
      link = this.o.transport.connect(url, {
        open: () => {
          if (!mine()) return;
          this.lastHeard = this.o.clock.now();
          // A link that opens but is never logged in (a node that accepts and hangs) is given up.
          this.o.clock.clearTimeout(this.loginTimer);
          this.loginTimer = this.o.clock.setTimeout(() => {
            if (mine() && !this.ready) link?.close(4005, "login timeout");
          }, this.o.loginTimeoutMs);
          this.write(MessageId.GameLogin, { userId: cred.userId, token: cred.token, plat: this.o.plat, param: `caps=${this.o.caps}` });
          this.heartbeat();
        },
        message: (data) => {
          if (!mine()) return;
          this.lastHeard = this.o.clock.now();
          let got;
          try {
            got = codec.decode(data);
          } catch (e) {
            // A stream that announces an absurd frame cannot be resynchronised: start over.
            this.o.warn(`bad stream from the server: ${e instanceof FrameError ? e.message : String(e)}`);
            link?.close(4002, "bad frame");
            return;
          }
          for (const d of got) {
            if (!mine()) return;
            if ("error" in d) this.undecodable(d.id, d.error);
            else this.dispatch(d.id, d.msg);
          }
        },
        close: (code, reason) => {
          if (!mine()) return;
          this.link = null;
          // The server's own words, when it said why before closing.
          const why = this.closing ? `${this.closing.code} ${this.closing.message}` : reason || `closed (${code})`;
          this.lost(why, code);
        },
      });
      this.link = link;
      // A connect that hangs (packets dropped on the way) is given up like a login that does.
      this.o.clock.clearTimeout(this.loginTimer);
      this.loginTimer = this.o.clock.setTimeout(() => {
        if (mine() && !this.ready) link?.close(4005, "connect timeout");
      }, this.o.loginTimeoutMs);
    } catch (e) {
      this.lost(`connect: ${String(e)}`);
    }
  }

  /** The link is gone: fail what was sent on it, and schedule the next attempt. */
  private lost(detail: string, code = 1006): void {
    this.ready = false;
    this.link = null;
    this.o.clock.clearTimeout(this.beat);
    this.o.clock.clearTimeout(this.loginTimer);
    this.failAll(new RsgameError(NO_ANSWER, `connection lost: ${detail}`), false);
    if (this.stopped) return;
    this.setStatus("offline", detail);
    // A connection that did not last is no success: keep backing off, so a server that closes
    // us (flooding, an oversize frame: 1008, 1009) is not hammered every half second.
    if (this.onlineSince && this.o.clock.now() - this.onlineSince > STABLE_MS && code !== 1008 && code !== 1009) {
      this.attempt = 0;
      this.failures = 0;
    }
    this.onlineSince = 0;
    this.failures += 1;
    const b = this.o.backoff;
    const base = Math.min(b.maxMs, b.firstMs * 2 ** this.attempt);
    const delay = base * (1 - b.jitter + 2 * b.jitter * this.o.clock.random());
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retry = this.o.clock.setTimeout(() => void this.open(), delay);
  }

  private heartbeat(): void {
    this.o.clock.clearTimeout(this.beat);
    this.beat = this.o.clock.setTimeout(() => {
      if (!this.link) return;
      // A half-open link (a phone changing networks) delivers nothing and reports nothing.
      if (this.o.clock.now() - this.lastHeard > 3 * this.o.heartbeatMs) {
        this.link.close(4003, "heartbeat timeout");
        return;
      }
      this.sn += 1;
      this.pingAt.set(this.sn, this.o.clock.now());
      this.write(MessageId.Ping, { sn: this.sn });
      this.heartbeat();
    }, this.o.heartbeatMs);
  }

  private write(id: number, msg: object): void {
    this.link?.send(this.encoder.encode(id, msg));
  }

  /** Sends now, or queues for the next login. Encodes at once, so a message that cannot be
   * encoded throws to its sender rather than later, inside the handler of the login reply. */
  private submit(id: number, msg: object, p?: Pending): boolean {
    if (this.stopped) return false;
    const data = this.encoder.encode(id, msg);
    if (this.ready && this.link) {
      this.link.send(data);
      if (p) p.sent = true;
      return true;
    }
    if (STALE.has(id) || this.queue.length >= this.o.queueLimit) return false;
    this.queue.push({ id, data, pending: p });
    return true;
  }

  // ---- what arrives -------------------------------------------------------------------

  private dispatch(id: number, msg: unknown): void {
    if (id === MessageId.UserInfo && !this.ready) this.loggedIn(msg as pb.UserInfo);
    else if (id === MessageId.PingResp) {
      const at = this.pingAt.get(Number((msg as pb.PingResp).sn));
      if (at !== undefined) this.rtt = this.o.clock.now() - at;
      this.pingAt.clear();
    } else if (id === MessageId.ErrorResp) {
      this.refusal(msg as pb.ErrorResp);
    }
    // The reply to the oldest request waiting for this id.
    const i = this.pending.findIndex((p) => p.sent && p.replyId === id);
    if (i >= 0) {
      const [p] = this.pending.splice(i, 1);
      this.o.clock.clearTimeout(p.timer);
      if (!p.expired) p.resolve(msg);
    }
    for (const fn of this.listeners.get(id) ?? []) this.safely(() => (fn as (m: unknown) => void)(msg));
    for (const fn of this.any) this.safely(() => fn(id, msg));
    if (id === MessageId.LogoutResp) {
      const t = (msg as pb.LogoutResp).type;
      if (t === pb.LogoutType.LOGOUT_TYPE_ELSEWHERE) this.stop("takeover");
      else if (t === pb.LogoutType.LOGOUT_TYPE_ENDED) {
        // A password changed by this very player ends every session before the new tokens:
        // ours lives on, so log in again with them rather than stop.
        const renewed = this.loginOf !== undefined && this.o.renewedSince?.(this.loginOf);
        if (renewed) this.link?.close(4006, "logged in again");
        else this.stop("ended");
      }
      // Our own Logout answered (send() or logout()): the server closes next; do not come back.
      else if (t === pb.LogoutType.LOGOUT_TYPE_QUIT) this.stop("logout");
    }
  }

  private loggedIn(me: pb.UserInfo): void {
    this.ready = true;
    this.onlineSince = this.o.clock.now();
    this.me = me;
    this.setStatus("online", "");
    this.o.clock.clearTimeout(this.loginTimer);
    this.failures = 0;
    for (const q of this.queue.splice(0)) {
      this.link?.send(q.data);
      if (q.pending) q.pending.sent = true;
    }
  }

  /** A message that did not decode: a request waiting for it would otherwise wait in vain and
   * take the next one's reply; it fails now. */
  private undecodable(id: number, error: string): void {
    this.o.warn(`message ${NAMES[id] ?? id} did not decode: ${error}`);
    const i = this.pending.findIndex((p) => p.sent && p.replyId === id);
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    this.o.clock.clearTimeout(p.timer);
    if (!p.expired) p.reject(new RsgameError(Code.BadParam, `the reply to ${NAMES[p.reqId]} did not decode: ${error}`, p.reqId));
  }

  private refusal(e: pb.ErrorResp): void {
    const err = new RsgameError(e.code, e.msg, e.reqId);
    if (!this.ready && (e.reqId === MessageId.GameLogin || e.reqId === 0)) {
      // The login itself was refused.
      if (e.code === Code.TokenExpired) {
        // A bad or revoked token: close, and the next attempt asks for a refreshed one.
        this.refused = true;
        this.link?.close(4001, "login refused");
      } else if (e.code === Code.Forbidden) this.stop("refused"); // another account's token
      else if (e.code === Code.AccountBanned || e.code === Code.AccountClosed) this.stop("ended");
      // Anything else (a draining node: 400503) waits for the server's close, then retries.
    }
    if (e.reqId === 0) {
      // About the connection, not a request: the reason of the close that follows.
      this.closing = err;
      return;
    }
    const i = this.pending.findIndex((p) => p.sent && p.reqId === e.reqId);
    if (i >= 0) {
      const [p] = this.pending.splice(i, 1);
      this.o.clock.clearTimeout(p.timer);
      if (!p.expired) p.reject(err);
      return;
    }
    for (const fn of this.errorListeners) this.safely(() => fn(err));
  }

  // ---- bookkeeping --------------------------------------------------------------------

  private forget(p: Pending): void {
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    const q = this.queue.findIndex((x) => x.pending === p);
    if (q >= 0) this.queue.splice(q, 1);
  }

  /** Fails requests sent on the lost link (their answer will never come); with `all`, also
   * those still queued. */
  private failAll(err: RsgameError, all: boolean): void {
    const failing = this.pending.filter((p) => all || p.sent);
    this.pending = this.pending.filter((p) => !failing.includes(p));
    if (all) this.queue = [];
    for (const p of failing) {
      this.o.clock.clearTimeout(p.timer);
      if (!p.expired) p.reject(new RsgameError(err.code, err.message, p.reqId));
    }
  }

  private setStatus(s: Status, detail: string): void {
    this._status = s;
    for (const fn of this.statusListeners) this.safely(() => fn(s, detail));
  }

  /** A listener's exception must not break the socket (or the other listeners). */
  private safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.o.warn(`a listener threw: ${String(e)}`);
    }
  }
}
