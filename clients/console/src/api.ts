// The console's calls: same-origin fetches with the session cookie (HttpOnly: never read
// here) and, for every change, the session's CSRF token. Replies are rsgame's envelope.

export class ApiError extends Error {
  constructor(
    public code: number,
    msg: string,
  ) {
    super(msg);
  }
}

export type Role = "viewer" | "gm" | "admin";

export interface Operator {
  id: number;
  username: string;
  role: Role;
  totp: boolean;
  disabled: boolean;
  createdAt: number;
  lastLoginAt: number;
}

export interface PlayerLine {
  id: number;
  username: string;
  nickname: string;
  banned: boolean;
  closed: boolean;
  online: string | null;
}

export interface LedgerEntry {
  id: number;
  asset: string;
  delta: number;
  balance: number;
  reason: string;
  reference: string;
  createdAt: number;
}

export interface PlayerPage {
  player: PlayerLine;
  mobile: string;
  email: string;
  ban: { until: number; reason: string } | null;
  closedAt: number | null;
  identities: Array<{ kind: string; value: string; createdAt: number }>;
  pack: {
    player: { level: number; exp: number; coins: number; score: number; hp: number; maxHp: number };
    items: Array<{ goods: { id: number; name: string }; count: number; equipped: boolean }>;
  } | null;
  ledger: LedgerEntry[];
  history: Array<{ kind: number; remark: string; ip: string; at: number }>;
  battles: Array<{ levelId: number; name: string; wins: number; losses: number }>;
  guild: string | null;
  mute: { until: number; reason: string; by: string } | null;
  whereabouts: { node: string; room: number; name: string; permanent: boolean; connected: boolean } | null;
  place: { sceneId: number; x: number; z: number } | null;
  relations: Array<{ userId: number; nickname: string; kind: "friend" | "blacklist" }>;
}

export type Channel = "world" | "room" | "guild";

export interface ChatLine {
  id: number;
  channel: Channel;
  place: number;
  userId: number;
  nickname: string;
  msgType: number;
  msg: string;
  url: string;
  sentAt: number;
}

export interface AuditEntry {
  id: number;
  operatorId: number;
  operator: string;
  action: string;
  target: string;
  before: string;
  after: string;
  reason: string;
  ip: string;
  at: number;
}

let csrf = "";

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrf;
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "the console's server cannot be reached");
  }
  const env = await res.json().catch(() => null);
  if (!env) throw new ApiError(res.status, `HTTP ${res.status}`);
  if (env.code !== 200) throw new ApiError(env.code, env.msg);
  return env.data as T;
}

export async function me(): Promise<Operator | null> {
  try {
    const m = await call<{ operator: Operator; csrf: string }>("GET", "/console/v1/auth/me");
    csrf = m.csrf;
    return m.operator;
  } catch (e) {
    if (e instanceof ApiError && e.code === 400500) return null;
    throw e;
  }
}

export async function login(username: string, password: string, totp: string): Promise<Operator> {
  const m = await call<{ operator: Operator; csrf: string }>("POST", "/console/v1/auth/login", { username, password, totp });
  csrf = m.csrf;
  return m.operator;
}

export const logout = () => call<boolean>("POST", "/console/v1/auth/logout", {});
export const search = (q: string) => call<PlayerLine[]>("GET", `/console/v1/players?q=${encodeURIComponent(q)}`);
export const player = (id: number) => call<PlayerPage>("GET", `/console/v1/players/${id}`);
export const act = (id: number, what: "ban" | "unban" | "kick" | "grant" | "mute", body: object) =>
  call<unknown>("POST", `/console/v1/players/${id}/${what}`, body);
export interface NodeStatus {
  id: string;
  players: number;
  draining: boolean;
  at: number;
  rooms: Array<{ id: number; name: string; kind: number; permanent: boolean; matched: boolean; players: number }>;
}

export const servers = () => call<NodeStatus[]>("GET", "/console/v1/servers");
export const drain = (node: string, on: boolean, reason: string) =>
  call<NodeStatus>("POST", "/console/v1/servers/drain", { node, drain: on, reason });
export const closeRoom = (node: string, room: number, reason: string) =>
  call<NodeStatus>("POST", "/console/v1/servers/close-room", { node, room, reason });
export const chat = (query: string) => call<ChatLine[]>("GET", `/console/v1/chat${query}`);
export const removeChat = (channel: Channel, id: number, reason: string) =>
  call<ChatLine>("POST", "/console/v1/chat/remove", { channel, id, reason });
export const resetPassword = (id: number, reason: string) =>
  call<{ target: string; expiresAt: number }>("POST", `/console/v1/players/${id}/reset-password`, { reason });
export const mail = (body: object) => call<number[]>("POST", "/console/v1/mail", body);
export const audit = (query: string) => call<AuditEntry[]>("GET", `/console/v1/audit${query}`);
export const operators = () => call<Operator[]>("GET", "/console/v1/operators");
export const createOperator = (body: object) => call<Operator>("POST", "/console/v1/operators", body);
export const updateOperator = (id: number, body: object) => call<Operator>("POST", `/console/v1/operators/${id}`, body);
export const changePassword = (old: string, next: string) => call<boolean>("POST", "/console/v1/me/password", { old, new: next });
export const totpBegin = () => call<{ secret: string; link: string }>("POST", "/console/v1/me/totp/begin", {});
export const totpEnable = (code: string) => call<boolean>("POST", "/console/v1/me/totp/enable", { code });

/** A request id for an action: the same one is sent again if the operator retries. */
export function requestId(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

export function when(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "—";
}

export interface DataVersion {
  id: number;
  file: string;
  operator: string;
  reason: string;
  at: number;
  size: number;
}

export interface Notice {
  id: number;
  title: string;
  content: string;
  start: string;
  end: string | null;
}

export const dataTables = () => call<any>("GET", "/console/v1/data");
export const dataFile = async (name: string) =>
  (await call<{ file: string; content: string }>("GET", `/console/v1/data/file?name=${encodeURIComponent(name)}`)).content;
export const dataCheck = (file: string, content: string) => call<boolean>("POST", "/console/v1/data/check", { file, content });
export const dataApply = (file: string, content: string, reason: string) =>
  call<DataVersion>("POST", "/console/v1/data/apply", { file, content, reason });
export const dataVersions = (file: string) => call<DataVersion[]>("GET", `/console/v1/data/versions?file=${encodeURIComponent(file)}`);
export const dataRollback = (id: number, reason: string) => call<DataVersion>("POST", "/console/v1/data/rollback", { id, reason });
export const notices = () => call<Notice[]>("GET", "/console/v1/notices");
export const setNotices = (list: Notice[], reason: string) => call<DataVersion>("POST", "/console/v1/notices", { notices: list, reason });

export interface Sample {
  at: number;
  online: number;
  connections: number;
  rooms: number;
  httpPerSec: number;
  httpErrorsPerSec: number;
  framesInPerSec: number;
  tickP99Ms: number;
  httpP99Ms: number;
  handlerP99Ms: number;
  dbInUse: number;
}

export interface Dashboard {
  samples: Sample[];
  scenes: Record<string, number>;
  minutes: Array<{ at: number; logins: number; registrations: number }>;
  nodes: NodeStatus[];
  health: Array<{ name: string; backend: string; ok: boolean; ms: number; error: string }>;
}

export const dashboard = () => call<Dashboard>("GET", "/console/v1/dashboard");
