// REST: go-game's envelope `{code, msg, data}` (code 200 on success), JWT bearer auth, and
// the session kept in sessionStorage so a page reload resumes it.

export class ApiError extends Error {
  constructor(
    public code: number,
    msg: string,
  ) {
    super(msg);
  }
}

export interface Session {
  accessToken: string;
  accessExpire: number;
  refreshAfter: number;
  refreshToken: string;
  servers: string[];
  userId: number;
  username: string;
  nickname: string;
}

const KEY = "rsgame.session";

export function loadSession(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export async function call<T>(path: string, body: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(path, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  let env: { code: number; msg: string; data?: T };
  try {
    env = await res.json();
  } catch {
    throw new ApiError(res.status, `HTTP ${res.status}`);
  }
  if (env.code !== 200) throw new ApiError(env.code, env.msg);
  return env.data as T;
}

interface TokenReply {
  accessToken: string;
  accessExpire: number;
  refreshAfter: number;
  refreshToken: string;
  servers: string[];
}

interface Detail {
  userInfo: { id: number; username: string; nickname: string };
}

async function complete(t: TokenReply): Promise<Session> {
  const d = await call<Detail>("/usercenter/v1/user/detail", {}, t.accessToken);
  const s: Session = {
    accessToken: t.accessToken,
    accessExpire: t.accessExpire,
    refreshAfter: t.refreshAfter,
    refreshToken: t.refreshToken,
    servers: t.servers?.length ? t.servers : ["/ws"],
    userId: d.userInfo.id,
    username: d.userInfo.username,
    nickname: d.userInfo.nickname,
  };
  saveSession(s);
  return s;
}

export interface Captcha {
  key: string;
  code: string;
}

export async function register(username: string, password: string, nickname: string, captcha?: Captcha) {
  const t = await call<TokenReply>("/usercenter/v1/user/register", {
    username,
    password,
    nickname,
    captchaKey: captcha?.key ?? "",
    captchaCode: captcha?.code ?? "",
  });
  return complete(t);
}

export async function login(username: string, password: string, captcha?: Captcha) {
  const t = await call<TokenReply>("/usercenter/v1/user/login", {
    username,
    password,
    captchaKey: captcha?.key ?? "",
    captchaCode: captcha?.code ?? "",
  });
  return complete(t);
}

const DEVICE_KEY = "rsgame.device";

/**
 * This browser's device id: made once (16 random bytes as hex) and kept in localStorage, so
 * "Play as guest" finds the same account on every visit. Whoever knows it plays as the guest:
 * it never leaves this browser except to log in.
 */
export function deviceId(): string {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id || id.length < 10) {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    id = `web-${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

/** Logs in as this browser's guest; the first time makes the guest account. */
export async function loginGuest(captcha?: Captcha) {
  const t = await call<TokenReply>("/usercenter/v1/user/loginDevice", {
    deviceId: deviceId(),
    captchaKey: captcha?.key ?? "",
    captchaCode: captcha?.code ?? "",
  });
  return complete(t);
}

/** What a verification code is for (`VerilyType` in proto/basic.proto). */
export const Purpose = { bind: 1, login: 3, reset: 4 } as const;

/** Has a 6-digit code sent to a phone number or email address; returns the key to send back. */
export async function sendCode(target: string, purpose: number, captcha: Captcha): Promise<string> {
  const t = await call<{ key: string }>("/basic/v1/basic/sendCode", {
    sendType: target.includes("@") ? 2 : 1,
    phone: target,
    verilyType: purpose,
    key: captcha.key,
    code: captcha.code,
  });
  return t.key;
}

/** Sets a new password with a code sent to the account's phone or email, and logs in. */
export async function resetPassword(target: string, code: string, key: string, password: string) {
  const t = await call<TokenReply>("/usercenter/v1/user/resetPassword", { target, code, key, new: password });
  return complete(t);
}

let refreshing: Promise<Session | null> | null = null;
/** Bumped by logout, so a refresh that finishes afterwards does not store its tokens. */
let epoch = 0;

/**
 * A valid access token: the stored one, or a refreshed one when it is due. Null: log in again.
 * One refresh at a time: refresh tokens rotate and a reused one revokes the whole family, so
 * the socket's reconnect and a REST call must not both spend the same one.
 */
export function freshToken(s: Session): Promise<Session | null> {
  const now = Date.now() / 1000;
  if (now < s.refreshAfter && now < s.accessExpire - 30) return Promise.resolve(s);
  if (!refreshing) {
    refreshing = refresh(s).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function refresh(s: Session): Promise<Session | null> {
  const started = epoch;
  try {
    const t = await call<TokenReply>("/usercenter/v1/user/refresh", { refreshToken: s.refreshToken });
    if (epoch !== started) return null;
    const next = { ...s, ...t, servers: t.servers?.length ? t.servers : s.servers };
    saveSession(next);
    return next;
  } catch (e) {
    // Only a refused token ends the session; a proxy error, a rate limit or no network
    // leave it for the next try.
    if (!(e instanceof ApiError) || e.code !== 400103) return s;
    saveSession(null);
    return null;
  }
}

export async function logout(s: Session): Promise<void> {
  try {
    // A live access token, or the revocation is refused and the tokens stay valid.
    const live = (await freshToken(s)) ?? s;
    await call("/usercenter/v1/user/logout", { refreshToken: live.refreshToken }, live.accessToken);
  } finally {
    epoch += 1;
    saveSession(null);
  }
}

export function captcha(): Promise<{ image: string; key: string; length: number }> {
  return call("/basic/v1/basic/captcha", {});
}

export interface Goods {
  id: number;
  name: string;
  kind: string;
  /** A consumable's: `{heal: n}`, `{exp: n}` or `{buff: {attack, secs}}`. */
  effect?: { heal?: number; exp?: number; buff?: { attack: number; secs: number } };
  slot?: string;
  attack: number;
  defence: number;
}

/** What a goods does, in a few words (shown in the shop and the bag). */
export function describe(g: Goods): string {
  const e = g.effect;
  if (e?.heal) return `heals ${e.heal} hp`;
  if (e?.exp) return `+${e.exp} exp`;
  if (e?.buff) return `+${e.buff.attack} attack for ${e.buff.secs} s`;
  const parts = [];
  if (g.attack) parts.push(`+${g.attack} attack`);
  if (g.defence) parts.push(`+${g.defence} defence`);
  if (g.slot) parts.push(g.slot);
  return parts.join(", ") || g.kind;
}

export interface Pack {
  player: { userId: number; level: number; exp: number; coins: number; hp: number; maxHp: number; score: number };
  totalAttack: number;
  totalDefence: number;
  items: Array<{ goods: Goods; count: number; equipped: boolean }>;
  /** Total exp where the player's level began, and where the next begins (0: top level). */
  levelExp?: number;
  nextLevelExp?: number;
}

export interface ShopItem {
  id: number;
  price: number;
  goods: Goods;
}

export interface Mail {
  id: number;
  kind: string;
  title: string;
  body: string;
  coins: number;
  goods: Array<{ goods_id: number; count: number }>;
  createdAt: number;
  expiresAt: number;
  read: boolean;
  claimed: boolean;
}

export interface InboxPage {
  mails: Mail[];
  unread: number;
  next: number;
}

export interface Ranking {
  list: Array<{ rank: number; userId: number; value: number }>;
  me?: { rank: number; userId: number; value: number };
}

/** A guild as anyone sees it (`/game/v1/guild/…`). */
export interface Guild {
  id: number;
  name: string;
  notice: string;
  open: boolean;
  leader: number;
  members: number;
  maxMembers: number;
  createdAt: number;
}

export type GuildRole = "member" | "officer" | "leader";

export interface GuildDetail {
  guild: Guild;
  members: { userId: number; role: GuildRole; joinedAt: number; online: boolean }[];
  myRole: GuildRole | null;
}

export interface JoinRequest {
  userId: number;
  createdAt: number;
}
