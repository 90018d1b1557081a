// REST: go-game's envelope `{code, msg, data}` turned into typed replies or an RsgameError,
// bearer tokens refreshed one at a time, and the session the game socket logs in with.
import $protobuf from "protobufjs/minimal.js";
import { routes, type ChangePasswordReq, type FileDetail, type Routes, type TokenReply, Code } from "./gen/rest.js";
import { NO_ANSWER, RsgameError } from "./errors.js";
import { fetchHttp, type Http } from "./http.js";
import { memoryStore, type Session, type SessionStore } from "./session.js";
import { Socket, type SocketOptions } from "./socket.js";
import { webSocketTransport } from "./transport.js";

export interface ClientOptions {
  /** The REST host, e.g. `https://game.example.com` (no trailing path). */
  baseUrl: string;
  /** How requests are sent: `fetchHttp()` by default; `wechatHttp(wx)` in a mini-game. */
  http?: Http;
  /** Where the session is kept: memory by default; `webStore(sessionStorage)` in a page. */
  store?: SessionStore;
  /** Called whenever the session changes (a login, a refresh, a logout: null). */
  onSession?: (s: Session | null) => void;
}

/** Refusals of a refresh that end the session; anything else leaves it for the next try. */
const ENDS_SESSION = new Set<number>([Code.TokenExpired, Code.AccountBanned, Code.AccountClosed]);

/** Refresh this long before the access token expires even if `refreshAfter` is later. */
const EXPIRY_MARGIN_S = 30;

export class Client {
  /** Every player-facing route, typed (generated from docs/openapi.json): `api.game.getPack()`. */
  readonly api: Routes;
  private readonly http: Http;
  private readonly store: SessionStore;
  private _session: Session | null;
  private refreshing: Promise<Session | null> | null = null;
  /** Bumped by every login and logout, so a refresh of an older session that finishes
   * afterwards neither brings it back nor ends the new one. */
  private epoch = 0;
  /** The refusal that ended the last session (a ban's 400515 says until when and why), if the
   * server ended it rather than a logout here. */
  endedBy: RsgameError | null = null;

  constructor(private readonly opts: ClientOptions) {
    this.http = opts.http ?? fetchHttp();
    this.store = opts.store ?? memoryStore();
    this._session = this.store.load();
    this.api = routes((path, body, auth, method) => this.call(path, body, auth, method));
  }

  /** The logged-in player's session, or null. */
  get session(): Session | null {
    return this._session;
  }

  // ---- starting a session --------------------------------------------------------------

  /** Makes an account and logs in. */
  register(req: Parameters<Routes["user"]["register"]>[0]): Promise<Session> {
    return this.start(this.api.user.register(req));
  }

  login(req: Parameters<Routes["user"]["login"]>[0]): Promise<Session> {
    return this.start(this.api.user.login(req));
  }

  /** A guest: the first call with a device id makes its account; keep the id (see deviceId()). */
  loginDevice(req: Parameters<Routes["user"]["loginDevice"]>[0]): Promise<Session> {
    return this.start(this.api.user.loginDevice(req));
  }

  /** With a code sent by `api.basic.sendCode` (verilyType 3). */
  loginCode(req: Parameters<Routes["user"]["loginCode"]>[0]): Promise<Session> {
    return this.start(this.api.user.loginCode(req));
  }

  /** With the code of `wx.login()`. */
  loginWechat(req: Parameters<Routes["user"]["loginWechat"]>[0]): Promise<Session> {
    return this.start(this.api.user.loginWechat(req));
  }

  /** Sets a new password with a code (verilyType 4); every other session ends. */
  resetPassword(req: Parameters<Routes["user"]["resetPassword"]>[0]): Promise<Session> {
    return this.start(this.api.user.resetPassword(req));
  }

  /** Every other session of the account ends; this one goes on with new tokens. */
  changePassword(req: ChangePasswordReq): Promise<Session> {
    return this.start(this.call<TokenReply>("/usercenter/v1/user/changePassword", req, true, "POST"));
  }

  /** Closes the account (needs a login from the last few minutes: 400519 otherwise). Every
   * session ends; no way in opens it again. */
  async deleteAccount(): Promise<void> {
    await this.call("/usercenter/v1/user/delete", {}, true, "POST");
    this.forget();
  }

  /** Revokes this session's tokens (best effort) and forgets them. */
  async logout(): Promise<void> {
    const s = this._session;
    try {
      if (s) {
        // A live access token, or the revocation is refused and the tokens stay valid.
        const live = (await this.freshSession()) ?? s;
        await this.call("/usercenter/v1/user/logout", { refreshToken: live.refreshToken }, true, "POST");
      }
    } finally {
      this.epoch += 1;
      this.setSession(null);
    }
  }

  /** Ends every session of the account (a lost phone), this one included. */
  async logoutAll(): Promise<void> {
    try {
      await this.call("/usercenter/v1/user/logoutAll", {}, true, "POST");
    } finally {
      this.epoch += 1;
      this.setSession(null);
    }
  }

  /**
   * Forgets the session here without asking the server: for when the server already ended it
   * (the socket stopped with `ended`: a ban, a password change elsewhere, log out everywhere).
   */
  forget(): void {
    this.epoch += 1;
    this.setSession(null);
  }

  // ---- tokens --------------------------------------------------------------------------

  /**
   * The session with a valid access token: the kept one, or a refreshed one when it is due
   * (or `force`: the server refused the token). Null: log in again. One refresh at a time:
   * refresh tokens rotate and a reused one revokes the whole family, so the socket's reconnect
   * and a REST call must not both spend the same one.
   */
  freshSession(force = false): Promise<Session | null> {
    const s = this._session;
    if (!s) return Promise.resolve(null);
    const now = Date.now() / 1000;
    if (!force && now < s.refreshAfter && now < s.accessExpire - EXPIRY_MARGIN_S) return Promise.resolve(s);
    if (!this.refreshing) {
      this.refreshing = this.refresh(s).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async refresh(s: Session): Promise<Session | null> {
    const started = this.epoch;
    try {
      const t = await this.call<TokenReply>("/usercenter/v1/user/refresh", { refreshToken: s.refreshToken }, false, "POST");
      if (this.epoch !== started) return this._session;
      const next: Session = { ...s, ...pickTokens(t), servers: t.servers?.length ? t.servers : s.servers };
      this.setSession(next);
      return next;
    } catch (e) {
      // Only a refusal ends the session (a revoked token, a ban, a closed account); no
      // network, a proxy error or a rate limit leave it for the next try.
      if (!(e instanceof RsgameError) || !ENDS_SESSION.has(e.code)) throw e;
      if (this.epoch !== started) return this._session;
      this.endedBy = e;
      this.setSession(null);
      return null;
    }
  }

  /**
   * Uploads a file for the player (an avatar: then `api.user.update({avatar: detail.info.guid})`):
   * a multipart form with the field `file`, as `/basic/v1/basic/upload` takes it. The server
   * checks the size (`basic.upload_max_bytes`) and that the content matches the extension.
   */
  async upload(bytes: Uint8Array, fileName: string, contentType = "application/octet-stream"): Promise<FileDetail> {
    const boundary = `rsgame-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    // The name goes in a quoted header parameter: no quotes, no line breaks.
    const safe = fileName.replace(/["\r\n\\]/g, "_");
    const head = utf8(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${safe}"\r\nContent-Type: ${contentType}\r\n\r\n`);
    const tail = utf8(`\r\n--${boundary}--\r\n`);
    const body = new Uint8Array(head.length + bytes.length + tail.length);
    body.set(head, 0);
    body.set(bytes, head.length);
    body.set(tail, head.length + bytes.length);
    return this.call<FileDetail>("/basic/v1/basic/upload", body, true, "POST", `multipart/form-data; boundary=${boundary}`);
  }

  // ---- the game ------------------------------------------------------------------------

  /** The WebSocket URL of game server `i` of the session (absolute, or a path on the REST host). */
  gameUrl(i = 0): string {
    const servers = this._session?.servers ?? [];
    const server = servers.length ? servers[i % servers.length] : "/ws";
    if (/^wss?:\/\//.test(server)) return server;
    return this.opts.baseUrl.replace(/^http/, "ws").replace(/\/$/, "") + server;
  }

  /**
   * A game socket for this session: it logs in with fresh tokens at every (re)connect, tries
   * the session's servers in turn after failures, and stops when the session ends.
   */
  socket(opts: Partial<SocketOptions> = {}): Socket {
    return new Socket({
      transport: webSocketTransport(),
      url: (attempt) => this.gameUrl(Math.floor(attempt / 3)),
      credentials: async (refused) => {
        const login = this.epoch;
        const s = await this.freshSession(refused);
        return s ? { userId: s.userId, token: s.accessToken, login } : null;
      },
      renewedSince: (login) => this._session !== null && this.epoch !== login,
      ...opts,
    });
  }

  // ---- the envelope --------------------------------------------------------------------

  /**
   * One REST call: the reply's `data`, or an RsgameError with the envelope's code (0 when no
   * answer came). With `auth`, the access token goes along, refreshed when due, and a token
   * the server refuses is refreshed once and the call retried.
   */
  async call<T>(path: string, body: unknown, auth: boolean | "optional", method: "GET" | "POST" = "POST", type?: string): Promise<T> {
    // A public route that says more to a player it knows (a leaderboard's `me`).
    if (auth === "optional") return this.send<T>(path, body, (await this.freshSession().catch(() => null))?.accessToken ?? null, method, type);
    if (!auth) return this.send<T>(path, body, null, method, type);
    const s = await this.freshSession();
    if (!s) throw new RsgameError(Code.TokenExpired, "not logged in");
    try {
      return await this.send<T>(path, body, s.accessToken, method, type);
    } catch (e) {
      if (!(e instanceof RsgameError) || e.code !== Code.TokenExpired) throw e;
      const again = await this.freshSession(true);
      if (!again) throw e;
      return this.send<T>(path, body, again.accessToken, method, type);
    }
  }

  /** `body` goes as JSON, or as it is when it is bytes of the content `type`. */
  private async send<T>(path: string, body: unknown, token: string | null, method: "GET" | "POST", type?: string): Promise<T> {
    const headers: Record<string, string> = {};
    if (method === "POST") headers["Content-Type"] = type ?? "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await this.http({
        url: this.opts.baseUrl.replace(/\/$/, "") + path,
        method,
        headers,
        body: method !== "POST" ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body ?? {}),
      });
    } catch (e) {
      throw new RsgameError(NO_ANSWER, `the server cannot be reached: ${String(e)}`);
    }
    let env: { code?: unknown; msg?: unknown; data?: T };
    try {
      env = JSON.parse(res.text);
    } catch {
      throw new RsgameError(NO_ANSWER, `HTTP ${res.status} without an envelope`);
    }
    if (typeof env?.code !== "number") throw new RsgameError(NO_ANSWER, `HTTP ${res.status} without an envelope`);
    if (env.code !== Code.Ok) throw new RsgameError(env.code, typeof env.msg === "string" ? env.msg : "");
    return env.data as T;
  }

  private async start(reply: Promise<TokenReply>): Promise<Session> {
    const t = await reply;
    // A new session: a refresh of the old one still in flight must not touch it.
    this.epoch += 1;
    this.refreshing = null;
    const epoch = this.epoch;
    // The token reply does not name the player; the game login needs its id.
    const d = await this.send<{ userInfo: { id: number } }>("/usercenter/v1/user/detail", {}, t.accessToken, "POST");
    const s: Session = { ...pickTokens(t), servers: t.servers ?? [], userId: d.userInfo.id };
    if (this.epoch === epoch) {
      this.endedBy = null;
      this.setSession(s);
    }
    return s;
  }

  private setSession(s: Session | null): void {
    this._session = s;
    // The tokens have rotated whatever the game's storage does: its failure must not turn a
    // good refresh or login into a failed one.
    try {
      this.store.save(s);
      this.opts.onSession?.(s);
    } catch (e) {
      (globalThis as { console?: { warn(m: string): void } }).console?.warn(`rsgame: the session could not be kept: ${String(e)}`);
    }
  }
}

function utf8(text: string): Uint8Array {
  const out = new Uint8Array($protobuf.util.utf8.length(text));
  $protobuf.util.utf8.write(text, out, 0);
  return out;
}

function pickTokens(t: TokenReply) {
  return {
    accessToken: t.accessToken,
    accessExpire: t.accessExpire,
    refreshAfter: t.refreshAfter,
    refreshToken: t.refreshToken,
  };
}

/**
 * A device id for guest logins, made once and kept under `key` (16 random bytes as hex).
 * Whoever knows it plays as the guest: keep it like a password, never derive it from hardware.
 */
export function deviceId(
  storage: { getItem(k: string): string | null; setItem(k: string, v: string): void },
  key = "rsgame.device",
  random: (n: number) => Uint8Array = secureRandom,
): string {
  let id = storage.getItem(key);
  if (!id || id.length < 10) {
    id = `dev-${Array.from(random(16), (x) => x.toString(16).padStart(2, "0")).join("")}`;
    storage.setItem(key, id);
  }
  return id;
}

function secureRandom(n: number): Uint8Array {
  const c = (globalThis as { crypto?: { getRandomValues(b: Uint8Array): Uint8Array } }).crypto;
  if (!c) throw new Error("no crypto.getRandomValues here: pass random bytes to deviceId()");
  return c.getRandomValues(new Uint8Array(n));
}
