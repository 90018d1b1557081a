// The game connection: zinx frames (id u32 BE, length u32 BE, protobuf body) inside binary
// WebSocket messages, a heartbeat, and reconnection with backoff. Bodies are encoded and
// decoded only by the classes protobufjs generated from proto/game.proto (src/gen).
import $protobuf from "protobufjs/minimal.js";
import { pb } from "./gen/game.js";
import { ID } from "./gen/ids";

// int64 fields as plain numbers: every id the server sends (user ids, monster ids from 2^48)
// is below 2^53, so nothing is lost and no Long library is needed.
$protobuf.util.Long = undefined as never;
$protobuf.configure();

interface Codec {
  encode(m: object): { finish(): Uint8Array };
  decode(b: Uint8Array): unknown;
}

/** What each server→client id carries. */
const INBOUND: Record<number, Codec> = {
  [ID.PingResp]: pb.PingResp,
  [ID.ErrorResp]: pb.ErrorResp,
  [ID.UserInfo]: pb.UserInfo,
  [ID.EnterRoomResp]: pb.EnterRoomResp,
  [ID.ChatMsgResp]: pb.ChatMsgResp,
  [ID.ChatHistoryResp]: pb.ChatMsgResp,
  [ID.ChatRemoved]: pb.ChatRemoved,
  [ID.CreateRoomResp]: pb.CreateRoomResp,
  [ID.RoomListResp]: pb.RoomListResp,
  [ID.QuitRoomResp]: pb.QuitRoomResp,
  [ID.AddFriendResp]: pb.AddFriendResp,
  [ID.MyFriendResp]: pb.MyFriendResp,
  [ID.FriendStatus]: pb.UserInfo,
  [ID.MoveResp]: pb.MoveResp,
  [ID.AttackResp]: pb.AttackResp,
  [ID.SpawnResp]: pb.SpawnResp,
  [ID.DespawnResp]: pb.DespawnResp,
  [ID.PlayerStats]: pb.PlayerStats,
  [ID.SceneInfo]: pb.SceneInfo,
  [ID.MailNotice]: pb.MailNotice,
  [ID.LockstepFrames]: pb.LockstepFrames,
  [ID.MatchTicket]: pb.MatchTicket,
  [ID.MatchRemoveResp]: pb.MatchRemoveResp,
  [ID.MatchFound]: pb.MatchFound,
  [ID.MatchTimeout]: pb.MatchTimeout,
  [ID.PartyUpdate]: pb.PartyUpdate,
  [ID.GuildNotice]: pb.GuildNotice,
  [ID.LogoutResp]: pb.LogoutResp,
};

/** What each client→server id carries. */
const OUTBOUND: Record<number, Codec> = {
  [ID.Ping]: pb.Ping,
  [ID.GameLogin]: pb.GameLogin,
  [ID.EnterRoom]: pb.EnterRoom,
  [ID.ChatMsg]: pb.ChatMsg,
  [ID.CreateRoom]: pb.CreateRoom,
  [ID.RoomList]: pb.RoomList,
  [ID.QuitRoom]: pb.QuitRoom,
  [ID.ChatHistory]: pb.ChatHistory,
  [ID.AddFriend]: pb.AddFriend,
  [ID.MyFriend]: pb.MyFriend,
  [ID.Move]: pb.Move,
  [ID.Attack]: pb.Attack,
  [ID.Respawn]: pb.Respawn,
  [ID.LockstepInput]: pb.LockstepInput,
  [ID.LockstepSync]: pb.LockstepSync,
  [ID.MatchAdd]: pb.MatchAdd,
  [ID.MatchRemove]: pb.MatchRemove,
  [ID.PartyCreate]: pb.PartyCreate,
  [ID.PartyInvite]: pb.PartyInvite,
  [ID.PartyJoin]: pb.PartyJoin,
  [ID.PartyLeave]: pb.PartyLeave,
  [ID.PartyKick]: pb.PartyKick,
  [ID.Logout]: pb.Logout,
};

/** What is not worth sending late. */
const STALE = new Set<number>([ID.Move, ID.Attack, ID.Respawn, ID.LockstepInput, ID.Ping]);

const HEADER = 8;
const MAX_BODY = 1 << 20;
const PING_EVERY_MS = 5000;

/** Encodes one frame. */
export function frame(id: number, msg: object): Uint8Array {
  const codec = OUTBOUND[id];
  if (!codec) throw new Error(`no encoder for message ${id}`);
  const body = codec.encode(msg).finish();
  const out = new Uint8Array(HEADER + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, id, false);
  view.setUint32(4, body.length, false);
  out.set(body, HEADER);
  return out;
}

/** Splits a byte stream into frames: the server coalesces frames, and one may span messages. */
export class FrameReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Array<[number, Uint8Array]> {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf, 0);
    joined.set(chunk, this.buf.length);
    const out: Array<[number, Uint8Array]> = [];
    let at = 0;
    while (joined.length - at >= HEADER) {
      const view = new DataView(joined.buffer, joined.byteOffset + at, HEADER);
      const id = view.getUint32(0, false);
      const len = view.getUint32(4, false);
      if (len > MAX_BODY) throw new Error(`frame ${id} announces ${len} bytes`);
      if (joined.length - at - HEADER < len) break;
      out.push([id, joined.subarray(at + HEADER, at + HEADER + len)]);
      at += HEADER + len;
    }
    this.buf = joined.slice(at);
    return out;
  }
}

export type Status = "connecting" | "online" | "offline" | "kicked" | "closed";

export interface ConnOptions {
  /** The WebSocket URL of the game node. */
  url: string;
  /** Called before each (re)connection: the user id and a valid access token, or null to stop. */
  credentials(): Promise<{ userId: number; token: string } | null>;
  onMessage(id: number, msg: any): void;
  onStatus(s: Status, detail?: string): void;
}

/**
 * One game connection that logs in on every (re)connect. Sends queue until the login is
 * answered; a drop reconnects after 0.5, 1, 2, 4… s (at most 10 s, with jitter). A takeover by
 * another login (LogoutResp type 3), the account's sessions being ended (type 4: a ban, "log
 * out everywhere"; the token is dead) or a logout stops it.
 */
export class Conn {
  private ws: WebSocket | null = null;
  private ready = false;
  private stopped = false;
  private attempt = 0;
  private pending: Uint8Array[] = [];
  private pinger: number | undefined;
  private retry: number | undefined;
  private sn = 0;
  private onlineSince = 0;
  /** The last round trip, ms. */
  rtt = 0;
  private pingSent = new Map<number, number>();

  constructor(private opts: ConnOptions) {}

  start(): void {
    this.stopped = false;
    void this.open();
  }

  /** Sends a message; before the login is answered it waits in a queue. */
  send(id: number, msg: object): void {
    const f = frame(id, msg);
    if (this.ready && this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(f);
    // Movement, attacks and lockstep input go stale: only requests wait, and only so many.
    else if (!STALE.has(id) && this.pending.length < 32) this.pending.push(f);
  }

  /** Closes for good (a logout, or leaving the page). */
  stop(status: Status = "closed"): void {
    this.stopped = true;
    this.ready = false;
    this.pending = [];
    window.clearInterval(this.pinger);
    window.clearTimeout(this.retry);
    this.ws?.close(1000, "bye");
    this.ws = null;
    this.opts.onStatus(status);
  }

  /** Drops the connection as a network failure would (for testing reconnection by hand). */
  drop(): void {
    this.ws?.close(4000, "dropped by the client");
  }

  get online(): boolean {
    return this.ready;
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    this.opts.onStatus("connecting");
    const cred = await this.opts.credentials();
    if (this.stopped) return; // stopped (logged out) while the token was being refreshed
    if (!cred) {
      this.stop("closed");
      return;
    }
    const ws = new WebSocket(this.opts.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const reader = new FrameReader();
    ws.onopen = () => {
      ws.send(frame(ID.GameLogin, { userId: cred.userId, token: cred.token, plat: "web", param: "caps=all" }));
    };
    ws.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      let frames: Array<[number, Uint8Array]>;
      try {
        frames = reader.push(new Uint8Array(ev.data));
      } catch (e) {
        console.warn("bad stream from the server", e);
        ws.close(4002, "bad frame");
        return;
      }
      for (const [id, body] of frames) this.dispatch(ws, id, body);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ready = false;
      window.clearInterval(this.pinger);
      if (this.stopped) return;
      this.opts.onStatus("offline", ev.reason || `closed (${ev.code})`);
      // A connection that did not last is no success: keep backing off (a server that
      // closes us for flooding or oversize frames must not be hammered every 0.5 s).
      if (performance.now() - this.onlineSince > 30_000 && ev.code !== 1008 && ev.code !== 1009) this.attempt = 0;
      const delay = Math.min(10_000, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt = Math.min(this.attempt + 1, 6);
      this.retry = window.setTimeout(() => void this.open(), delay);
    };
  }

  private dispatch(ws: WebSocket, id: number, body: Uint8Array): void {
    const codec = INBOUND[id];
    if (!codec) return; // a newer server's message: ignore it, as proto3 clients do
    let msg: any;
    try {
      msg = codec.decode(body);
    } catch (e) {
      console.warn(`message ${id} did not decode`, e);
      return;
    }
    if (this.ws !== ws) return; // the rest of a batch that arrived after stop()
    if (id === ID.UserInfo && !this.ready) {
      this.ready = true;
      this.onlineSince = performance.now();
      this.opts.onStatus("online");
      for (const f of this.pending.splice(0)) ws.send(f);
      window.clearInterval(this.pinger);
      this.pinger = window.setInterval(() => this.ping(), PING_EVERY_MS);
    }
    if (id === ID.PingResp) {
      const sent = this.pingSent.get(Number(msg.sn));
      if (sent !== undefined) this.rtt = performance.now() - sent;
      this.pingSent.clear();
    }
    if (id === ID.LogoutResp && (msg.type === pb.LogoutType.LOGOUT_TYPE_ELSEWHERE || msg.type === pb.LogoutType.LOGOUT_TYPE_ENDED)) {
      this.stop("kicked");
    }
    this.opts.onMessage(id, msg);
    if (id === ID.ErrorResp && !this.ready && (msg.code === 400103 || msg.code === 400501)) {
      // The login itself was refused. A bad or revoked token (400103): close, and the next
      // attempt asks credentials() again, which refreshes it or gives up. A token of another
      // account (400501) will never work: stop.
      if (msg.code === 400501) this.stop("closed");
      else ws.close(4001, "login refused");
    }
  }

  private ping(): void {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.sn += 1;
    this.pingSent.set(this.sn, performance.now());
    this.ws.send(frame(ID.Ping, { sn: this.sn }));
  }
}

/** The WebSocket URL of a server named in the login reply (absolute, or a path on this host). */
export function wsUrl(server: string): string {
  if (server.startsWith("ws://") || server.startsWith("wss://")) return server;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${server}`;
}
