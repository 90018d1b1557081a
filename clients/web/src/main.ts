// rsgame's browser client: log in over REST, then play over one WebSocket to the game node
// the login reply names. Screens: log in / register (captcha when the server asks), the
// world, chat, friends, rooms, lockstep rooms, bag, shop and leaderboard.
import {
  MessageId as ID,
  RsgameError,
  pb,
  type GuildDetail,
  type Mail,
  type Outbound,
  type Pack,
  type RankBy,
  type Socket,
  type Status,
} from "@rsgame/client";
import { client, describe, deviceId } from "./api";
import { Lockstep } from "./lockstep";
import { World } from "./world";
import { applyStatic, errorText, lang, setLang, t, type Lang } from "./i18n";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** What to tell the player about a failed call: the code's friendly text, in their language. */
function errMsg(e: unknown): string {
  if (e instanceof RsgameError) return errorText(e.code, e.message);
  return errorText(400, String((e as Error)?.message ?? e));
}

function showLang(): void {
  applyStatic();
  for (const b of document.querySelectorAll<HTMLButtonElement>("[data-lang]")) b.classList.toggle("on", b.dataset.lang === lang);
  $("auth-submit").textContent = t(registering ? "register" : "login");
  $("hint").textContent = t(world.pvp ? "hintPvp" : "hint");
  showMatch();
  showStats();
}
for (const b of document.querySelectorAll<HTMLButtonElement>("[data-lang]")) {
  b.onclick = () => {
    setLang((b.dataset.lang ?? "en") as Lang);
    showLang();
  };
}

let conn: Socket | null = null;
/** The player's names, read once per login or reload. */
let profile = { username: "", nickname: "" };

/** Reads the player's names, then enters the game. */
async function loggedIn(): Promise<void> {
  const d = await client.api.user.detail();
  profile = { username: d.userInfo.username, nickname: d.userInfo.nickname };
  enterGame();
}

// ---- log in / register ------------------------------------------------------------------

let registering = false;
let captchaKey = "";

function showAuth(msg = ""): void {
  $("game").hidden = true;
  $("auth").hidden = false;
  $("auth-error").textContent = msg;
}

function setMode(reg: boolean): void {
  registering = reg;
  $("tab-login").classList.toggle("on", !reg);
  $("tab-register").classList.toggle("on", reg);
  $("nickname-row").hidden = !reg;
  $("auth-submit").textContent = t(reg ? "register" : "login");
  $("auth-error").textContent = "";
}

async function showCaptcha(): Promise<void> {
  try {
    const c = await client.api.basic.captcha();
    captchaKey = c.key;
    $<HTMLImageElement>("captcha-img").src = c.image;
    $("captcha-img").dataset.key = c.key;
    $<HTMLInputElement>("captcha-code").value = "";
    $("captcha-row").hidden = false;
  } catch (e) {
    $("auth-error").textContent = errMsg(e);
  }
}

async function submitAuth(ev: Event): Promise<void> {
  ev.preventDefault();
  const user = $<HTMLInputElement>("username").value.trim();
  const pass = $<HTMLInputElement>("password").value;
  const nick = $<HTMLInputElement>("nickname").value.trim();
  const code = $<HTMLInputElement>("captcha-code").value.trim();
  const captcha = !$("captcha-row").hidden && code ? { key: captchaKey, code } : undefined;
  $("auth-error").textContent = "";
  try {
    const answer = { captchaKey: captcha?.key ?? "", captchaCode: captcha?.code ?? "" };
    if (registering) await client.register({ username: user, password: pass, nickname: nick, ...answer });
    else await client.login({ username: user, password: pass, ...answer });
    $("captcha-row").hidden = true;
    await loggedIn();
  } catch (e) {
    const err = e as RsgameError;
    $("auth-error").textContent = errMsg(err);
    // 400508: the server wants a captcha; 400509: it was wrong (and is used up).
    if (err.code === 400508 || err.code === 400509 || !$("captcha-row").hidden) await showCaptcha();
  }
}

/** "Play as guest": this browser's device id logs in (the first time makes the guest). */
async function playAsGuest(): Promise<void> {
  const code = $<HTMLInputElement>("captcha-code").value.trim();
  const captcha = !$("captcha-row").hidden && code ? { key: captchaKey, code } : undefined;
  $("auth-error").textContent = "";
  try {
    await client.loginDevice({ deviceId: deviceId(), captchaKey: captcha?.key ?? "", captchaCode: captcha?.code ?? "" });
    $("captcha-row").hidden = true;
    await loggedIn();
  } catch (e) {
    const err = e as RsgameError;
    $("auth-error").textContent = errMsg(err);
    // Many new guests from one address: the server wants a captcha for another.
    if (err.code === 400508 || err.code === 400509) await showCaptcha();
  }
}

// ---- forgot password: a code to the account's phone or email, then a new password ----------

let resetCaptchaKey = "";
let resetKey = "";

async function showResetCaptcha(): Promise<void> {
  try {
    const c = await client.api.basic.captcha();
    resetCaptchaKey = c.key;
    $<HTMLImageElement>("reset-captcha-img").src = c.image;
    $("reset-captcha-img").dataset.key = c.key;
    $<HTMLInputElement>("reset-captcha").value = "";
  } catch (e) {
    $("reset-error").textContent = errMsg(e);
  }
}

function showReset(on: boolean): void {
  $("auth-form").hidden = on;
  $("reset-form").hidden = !on;
  $("reset-error").textContent = "";
  resetKey = "";
  delete $("reset-form").dataset.key;
  if (on) void showResetCaptcha();
}

async function sendResetCode(): Promise<void> {
  const target = $<HTMLInputElement>("reset-target").value.trim();
  const captcha = { key: resetCaptchaKey, code: $<HTMLInputElement>("reset-captcha").value.trim() };
  $("reset-error").textContent = "";
  try {
    // verilyType 4: a password reset (VerilyType in proto/basic.proto).
    const sent = await client.api.basic.sendCode({
      sendType: target.includes("@") ? 2 : 1,
      phone: target,
      verilyType: 4,
      key: captcha.key,
      code: captcha.code,
    });
    resetKey = sent.key;
    // Where the code's key is, for whoever drives this page (the browser test).
    $("reset-form").dataset.key = resetKey;
    $("reset-error").textContent = t("codeSent");
    $("reset-error").className = "note";
  } catch (e) {
    $("reset-error").textContent = errMsg(e);
    $("reset-error").className = "error";
  }
  // Each captcha works once, sent or not.
  await showResetCaptcha();
}

async function submitReset(ev: Event): Promise<void> {
  ev.preventDefault();
  const target = $<HTMLInputElement>("reset-target").value.trim();
  const code = $<HTMLInputElement>("reset-code").value.trim();
  const password = $<HTMLInputElement>("reset-password").value;
  if (!resetKey) {
    $("reset-error").textContent = t("sendCodeFirst");
    return;
  }
  $("reset-error").className = "error";
  try {
    await client.resetPassword({ target, code, key: resetKey, new: password });
    showReset(false);
    await loggedIn();
  } catch (e) {
    $("reset-error").textContent = errMsg(e);
  }
}

$("guest").onclick = () => void playAsGuest();
$("forgot").onclick = (ev) => {
  ev.preventDefault();
  showReset(true);
};
$("reset-back").onclick = (ev) => {
  ev.preventDefault();
  showReset(false);
};
$("reset-captcha-img").onclick = () => void showResetCaptcha();
$("reset-send").onclick = () => void sendResetCode();
$("reset-form").addEventListener("submit", (ev) => void submitReset(ev));
$("tab-login").onclick = () => setMode(false);
$("tab-register").onclick = () => setMode(true);
$("captcha-img").onclick = () => void showCaptcha();
$("auth-form").addEventListener("submit", (ev) => void submitAuth(ev));

// ---- the game ----------------------------------------------------------------------------

const world = new World($<HTMLCanvasElement>("view"), send);
const lockstep = new Lockstep($<HTMLCanvasElement>("lockstep"), send);
const names = new Map<number, string>();
let roomId = 0;
let roomType = 1;

/** Sends a message of any id the page builds (the SDK checks the body against the id's type). */
function send(id: number, m: object): void {
  conn?.send(id as keyof Outbound, m as never);
}

let toastTimer = 0;

/** A short note under the panels; it clears itself after a few seconds. */
function toast(msg: string): void {
  $("toast").textContent = msg;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    $("toast").textContent = "";
  }, 6000);
}

/** Learns the names of the accounts among `ids` this page has not met (one look-up). */
async function learnNames(ids: number[]): Promise<void> {
  const unknown = [...new Set(ids)].filter((id) => id > 0 && id !== world.me.id && !names.has(id)).slice(0, 100);
  if (unknown.length === 0) return;
  try {
    const list = await client.api.user.profiles({ userIds: unknown });
    for (const p of list) names.set(p.userId, p.nickname);
  } catch {
    // Names are a nicety: ids stay where the look-up fails.
  }
}

function nameOf(id: number): string {
  if (id === world.me.id) return world.me.name || "me";
  return names.get(id) ?? world.entities.get(id)?.name ?? `#${id}`;
}

let connStatus: Status | "kicked" = "connecting";

function status(s: Status, detail: string): void {
  // Taken over or ended: the player sees why, and the page does not reconnect.
  const kicked = s === "stopped" && (detail === "takeover" || detail === "ended");
  connStatus = kicked ? "kicked" : s === "stopped" ? "closed" as Status : s;
  showStatus();
  // The close's code and reason are for whoever debugs, not for the player.
  if (s === "offline" && detail) console.info(`connection closed: ${detail}`);
  if (kicked) toast(t("kickedToast"));
  if (s === "stopped" && detail === "takeover") showAuth(t("elsewhere"));
  if (s === "stopped" && detail === "ended") {
    // Banned, or logged out everywhere: the tokens are dead; only a new login helps.
    client.forget();
    showAuth(t("ended"));
  }
  // No token left to log in with (the refresh was refused).
  if (s === "stopped" && detail === "refused") showAuth(t("sessionExpired"));
  if (s !== "online" && ticket) {
    // The server drops a ticket when its connection goes.
    ticket = null;
    showMatch(t("matchStopped"));
  }
}

function showStatus(): void {
  const el = $("status");
  el.textContent = t(connStatus === "offline" ? "reconnecting" : connStatus);
  el.className = `status ${connStatus}`;
}

/** Where the player's level began and where the next begins (total exp; 0: top level). */
let levelSpan = { from: 0, to: 0, level: 0 };

function showExp(): void {
  const m = world.me;
  const { from, to } = levelSpan;
  if (levelSpan.level !== m.level) {
    // A level-up since the bag was read: its span comes with the next read.
    if (client.session && levelSpan.level !== 0) void refreshBag();
    levelSpan.level = m.level;
  }
  const part = to > from ? Math.max(0, Math.min(1, (m.exp - from) / (to - from))) : 1;
  $("exp-fill").style.width = `${(part * 100).toFixed(1)}%`;
  $("exp-text").textContent = to > from ? `${t("exp")} ${m.exp - from} / ${to - from}` : `${t("exp")} ${m.exp}`;
}

function showStats(): void {
  const m = world.me;
  $("me-name").textContent = m.name;
  showExp();
  showStatus();
  $("me-level").textContent = String(m.level);
  $("me-hp").textContent = String(m.hp);
  $("me-maxhp").textContent = String(m.maxHp);
  $("me-coins").textContent = String(m.coins);
  $("dead").hidden = !m.dead || !world.active;
  $("dead-text").textContent = world.killedBy ? t("killedBy", { name: world.killedBy }) : t("died");
}

world.onLevelUp = (level) => {
  const el = $("level-up");
  el.textContent = t("levelUp", { level });
  // Restarts the rise-and-fade each time.
  el.hidden = true;
  void el.offsetWidth;
  el.hidden = false;
  window.setTimeout(() => {
    el.hidden = true;
  }, 2000);
};

world.onStats = showStats;
world.onReward = () => void refreshBag();
world.onPick = (e) => {
  names.set(e.id, e.name);
  knowPlayers();
  $<HTMLInputElement>("chat-to").value = e.name;
  $<HTMLInputElement>("friend-id").value = e.name;
  chatTab(3);
  toast(t("selected", { name: e.name }));
};

/** Offers the names this page knows in the name fields (a datalist). */
let knownTimer = 0;
function knowPlayers(): void {
  window.clearTimeout(knownTimer);
  knownTimer = window.setTimeout(() => {
    const opts = [...names.entries()]
      .filter(([id]) => id !== world.me.id)
      .slice(-200)
      .map(([, name]) => {
        const o = document.createElement("option");
        o.value = name;
        return o;
      });
    $("known-players").replaceChildren(...opts);
  }, 200);
}

/** The player a name field means: a name this page has met (any case), or `#id` / an id. */
function playerId(text: string): number {
  const v = text.trim();
  const n = /^#?(\d+)$/.exec(v);
  if (n) return Number(n[1]);
  const lower = v.toLowerCase();
  for (const [id, name] of names) if (name.toLowerCase() === lower && id !== world.me.id) return id;
  for (const e of world.entities.values()) if (e.kind === pb.EntityKind.ENTITY_KIND_PLAYER && e.name.toLowerCase() === lower) return e.id;
  return 0;
}

/** `playerId`, or 0 after telling the player the name is not known. */
function pickPlayer(text: string): number {
  const id = playerId(text);
  if (!id && text.trim()) toast(t("unknownPlayer", { name: text.trim() }));
  else if (!id) toast(t("whoTo"));
  return id;
}

function enterGame(): void {
  const session = client.session;
  if (!session) return;
  $("auth").hidden = true;
  $("game").hidden = false;
  world.me.id = session.userId;
  world.me.name = profile.nickname || profile.username;
  world.levelKnown = false;
  levelSpan = { from: 0, to: 0, level: 0 };
  names.set(session.userId, world.me.name);
  showStats();
  conn?.stop();
  // The SDK logs in with fresh tokens at every (re)connect, backs off, and stops for good on a
  // takeover or when the account's sessions end.
  conn = client.socket({ plat: "web" });
  conn.onMessage(onMessage);
  conn.onStatus(status);
  conn.start();
  void refreshBag();
  void refreshShop();
  void refreshRanks();
  void refreshMail();
  void refreshGuild();
}

function onMessage(id: number, m: any): void {
  world.handle(id, m);
  switch (id) {
    case ID.UserInfo: {
      // The login reply: where we are. The view follows over the next tick.
      const back = Number(m.roomId) === roomId && (roomType === 3 || roomType === 4);
      if (back) {
        // Reconnected inside the same lockstep room: the server replays the missed frames.
      } else {
        onEnter({ roomId: m.roomId, type: 1, name: `scene ${m.roomId}` });
        world.handle(id, m);
        // UserInfo does not say what kind of place it is: the room list does (a reload
        // inside a lockstep room must show the squares, not the world).
        send(ID.RoomList, { type: 0 });
      }
      showStats();
      send(ID.MyFriend, { type: 1 });
      send(ID.ChatHistory, { chatType: 1, limit: 30 });
      break;
    }
    case ID.EnterRoomResp:
      onEnter(m);
      if (!$("panel-rooms").hidden) send(ID.RoomList, { type: 0 });
      break;
    case ID.ChatMsgResp:
    case ID.ChatHistoryResp:
      for (const c of m.msgList ?? []) addChat(c);
      break;
    case ID.ChatRemoved:
      removeChat(Number(m.chatType), Number(m.userId), Number(m.sendTime));
      break;
    case ID.CreateRoomResp:
      toast(m.status === pb.ReplyStatus.REPLY_STATUS_OK ? t("roomCreated", { name: m.msg }) : errorText(400, m.msg));
      break;
    case ID.RoomListResp: {
      const list = m.roomList ?? [];
      const here = list.find((r: any) => Number(r.roomId) === roomId);
      const lockstepHere = here && (here.type === 3 || here.type === 4);
      if (here && lockstepHere !== (roomType === 3 || roomType === 4)) onEnter(here);
      else if (here) setPlace(`${here.name} (${roomId})`);
      showRooms(list);
      break;
    }
    case ID.QuitRoomResp:
      toast(Number(m.userId) === world.me.id ? t("youLeftRoom") : t("leftRoom", { name: nameOf(Number(m.userId)) }));
      break;
    case ID.MyFriendResp:
      showFriends(m.userList ?? []);
      break;
    case ID.FriendStatus:
      names.set(Number(m.userId), m.nickname || m.username);
      toast(t(m.online ? "isOnline" : "isOffline", { name: m.nickname || m.username }));
      send(ID.MyFriend, { type: 1 });
      break;
    case ID.AddFriendResp:
      toast(m.msg || t("done"));
      send(ID.MyFriend, { type: 1 });
      break;
    case ID.SpawnResp:
      for (const e of m.list ?? []) if (e.kind === pb.EntityKind.ENTITY_KIND_PLAYER) names.set(Number(e.id), e.name);
      break;
    case ID.MailNotice:
      toast(t("newMail", { title: m.title }));
      void refreshMail();
      break;
    case ID.MatchTicket:
      ticket = m.ticket;
      showMatch();
      break;
    case ID.MatchRemoveResp:
      ticket = null;
      showMatch(t("matchCancelled"));
      break;
    case ID.MatchTimeout:
      ticket = null;
      showMatch(t("matchTimeout"));
      break;
    case ID.MatchFound: {
      ticket = null;
      const others = (m.players ?? []).filter((p: any) => Number(p.userId) !== world.me.id);
      for (const p of m.players ?? []) names.set(Number(p.userId), p.nickname);
      showMatch(t("matched", { names: others.map((p: any) => p.nickname || p.userId).join(", ") }));
      // The demo plays on one node; a match elsewhere is announced, not followed.
      if (m.here) send(ID.EnterRoom, { roomId: m.roomId });
      else toast(t("matchElsewhere", { node: m.nodeId }));
      break;
    }
    case ID.PartyUpdate:
      onParty(m);
      break;
    case ID.GuildNotice:
      onGuildNotice(m);
      break;
    case ID.SceneInfo:
      world.pvp = Boolean(m.pvp);
      world.bounds = { minX: m.minX, minZ: m.minZ, maxX: m.maxX, maxZ: m.maxZ };
      world.viewDistance = Number(m.viewDistance) || 0;
      $("pvp").hidden = !world.pvp;
      // In a PvP scene a tap on a player attacks it: the hint must not say "chat".
      $("hint").textContent = t(world.pvp ? "hintPvp" : "hint");
      break;
    case ID.LockstepFrames:
      lockstep.handle(m);
      break;
    case ID.ErrorResp:
      toast(errorText(m.code, m.msg));
      if (m.reqId === ID.ChatMsg && !$<HTMLInputElement>("chat-text").value) {
        // Refused (too fast, too long): the line comes back to be sent again.
        $<HTMLInputElement>("chat-text").value = lastChat;
      }
      break;
  }
}

function setPlace(text: string): void {
  $("place").textContent = text;
}

function onEnter(m: any): void {
  roomId = Number(m.roomId);
  roomType = m.type;
  for (const u of m.userList ?? []) names.set(Number(u.userId), u.nickname || u.username);
  const ls = roomType === 3 || roomType === 4;
  world.reset();
  world.active = !ls;
  // Until the scene says otherwise (SceneInfo follows for a scene).
  world.pvp = false;
  world.bounds = null;
  world.viewDistance = 0;
  $("view").hidden = ls;
  $("touch").hidden = ls;
  $("lockstep-box").hidden = !ls;
  if (ls) lockstep.enter(roomId);
  setPlace(`${m.name || "room"} (${roomId})`);
  // Room chat belongs to the room left behind.
  chats[2] = [];
  chatTab(chatType);
  showStats();
}

// ---- chat --------------------------------------------------------------------------------

let chatType = 1;
const chats: Record<number, HTMLLIElement[]> = { 1: [], 2: [], 3: [], 4: [], 5: [] };

function chatTab(kind: number): void {
  chatType = kind;
  for (const b of $("chat-tabs").querySelectorAll("button")) b.classList.toggle("on", b.dataset.chat === String(kind));
  $("chat-to").hidden = kind !== 3;
  $("chat-log").replaceChildren(...chats[kind]);
  $("chat-log").scrollTop = 1e9;
}

/** The last line sent, given back to the input if the server refuses it. */
let lastChat = "";

/** Messages already shown: history after a reconnect overlaps what arrived live. */
const seen = new Set<string>();

function addChat(c: any): void {
  const kind = Number(c.chatType) || 1;
  const from = Number(c.userId);
  const key = `${kind}|${from}|${Number(c.objId)}|${Number(c.sendTime)}|${c.msg}`;
  if (seen.has(key)) return;
  seen.add(key);
  if (seen.size > 2000) seen.delete(seen.values().next().value as string);
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  const to = Number(c.objId);
  who.textContent = kind === 3 ? `${nameOf(from)} → ${nameOf(to)}: ` : `${nameOf(from)}: `;
  li.append(who, document.createTextNode(c.msg));
  if (kind === 3) li.className = "private";
  li.dataset.sendTime = String(c.sendTime);
  li.dataset.from = String(from);
  const list = chats[kind] ?? chats[1];
  list.push(li);
  if (list.length > 200) list.shift();
  if (kind === chatType) {
    $("chat-log").append(li);
    $("chat-log").scrollTop = 1e9;
  } else if (kind === 3 && from !== world.me.id) {
    toast(t("privateFrom", { name: nameOf(from) }));
  }
}

/** An operator removed a line: it goes from the log (a history fetched later lacks it too). */
function removeChat(kind: number, from: number, sendTime: number): void {
  const list = chats[kind];
  if (!list) return;
  const at = list.findIndex((li) => li.dataset.from === String(from) && li.dataset.sendTime === String(sendTime));
  if (at < 0) return;
  list[at].remove();
  list.splice(at, 1);
}

for (const b of $("chat-tabs").querySelectorAll<HTMLButtonElement>("button")) {
  b.onclick = () => chatTab(Number(b.dataset.chat));
}
$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $<HTMLInputElement>("chat-text");
  if (!text.value.trim()) return;
  const msg: Record<string, unknown> = { chatType, msgType: 1, msg: text.value };
  if (chatType === 3) {
    const to = pickPlayer($<HTMLInputElement>("chat-to").value);
    if (!to) return;
    msg.objId = to;
  }
  send(ID.ChatMsg, msg);
  lastChat = text.value;
  text.value = "";
});

// ---- friends -----------------------------------------------------------------------------

function showFriends(list: any[]): void {
  const items = list.map((u) => {
    names.set(Number(u.userId), u.nickname || u.username);
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = `dot${u.online ? " on" : ""}`;
    const name = document.createElement("span");
    name.className = "grow";
    name.textContent = `${u.nickname || u.username}${u.online && u.roomId ? ` · ${u.roomId}` : ""}`;
    const chat = document.createElement("button");
    chat.textContent = t("chat");
    chat.onclick = () => {
      $<HTMLInputElement>("chat-to").value = u.nickname || u.username;
      panel("chat");
      chatTab(3);
      send(ID.ChatHistory, { chatType: 3, objId: u.userId, limit: 30 });
    };
    li.append(dot, name, chat);
    return li;
  });
  $("friend-list").replaceChildren(...items);
  knowPlayers();
}

$("friend-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = pickPlayer($<HTMLInputElement>("friend-id").value);
  if (!id) return;
  send(ID.AddFriend, { userId: id, type: Number($<HTMLSelectElement>("friend-type").value) });
});

// ---- rooms -------------------------------------------------------------------------------

const ROOM_TYPES: Record<number, string> = { 1: "public", 2: "private", 3: "lockstep", 4: "privateLockstep" };

function showRooms(list: any[]): void {
  const items = list.map((r) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "grow";
    const members = (r.userList ?? []).length;
    name.textContent = `${r.name} (${r.roomId}) · ${t(ROOM_TYPES[r.type] ?? String(r.type))}${members ? ` · ${members}/${r.maxUser}` : ""}`;
    const enter = document.createElement("button");
    enter.textContent = t(Number(r.roomId) === roomId ? "here" : "enter");
    enter.disabled = Number(r.roomId) === roomId;
    enter.onclick = () => {
      let password = "";
      if (r.type === 2 || r.type === 4) password = prompt("Room password") ?? "";
      send(ID.EnterRoom, { roomId: r.roomId, password });
    };
    li.append(name, enter);
    return li;
  });
  $("room-list").replaceChildren(...items);
}

// ---- quick match -------------------------------------------------------------------------

/** The ticket while the server looks for players; null otherwise. */
let ticket: string | null = null;

let matchText = "";

function showMatch(text?: string): void {
  if (text !== undefined) matchText = text;
  $("quick-match").textContent = t(ticket ? "cancel" : "quickMatch");
  $("match-status").textContent = ticket ? t("looking") : matchText || t("matchIdle");
}

$("quick-match").onclick = () => {
  if (ticket) send(ID.MatchRemove, { ticket });
  // A party plays the squares together (up to four); alone, a duel.
  else send(ID.MatchAdd, { mode: party ? "squares" : "duel" });
};

// ---- guild (REST, with GuildNotice pushes) ------------------------------------------------

/** The player's guild (its detail), or null. */
let guild: GuildDetail | null = null;

const GUILD_EVENTS: Record<number, string> = {
  [pb.GuildEvent.GUILD_EVENT_CREATED]: "gCreated",
  [pb.GuildEvent.GUILD_EVENT_JOINED]: "gJoined",
  [pb.GuildEvent.GUILD_EVENT_REQUESTED]: "gRequested",
  [pb.GuildEvent.GUILD_EVENT_LEFT]: "gLeft",
  [pb.GuildEvent.GUILD_EVENT_KICKED]: "gKicked",
  [pb.GuildEvent.GUILD_EVENT_ROLE]: "gRole",
  [pb.GuildEvent.GUILD_EVENT_NOTICE]: "gNotice",
  [pb.GuildEvent.GUILD_EVENT_INVITED]: "gInvited",
  [pb.GuildEvent.GUILD_EVENT_DECLINED]: "gDeclined",
  [pb.GuildEvent.GUILD_EVENT_CLOSED]: "gClosed",
};

function onGuildNotice(m: any): void {
  const who = Number(m.subject) === world.me.id ? t("you") : nameOf(Number(m.subject));
  toast(t(GUILD_EVENTS[m.event] ?? "gChanged", { who, guild: m.name }));
  void refreshGuild();
}

async function refreshGuild(): Promise<void> {
  try {
    guild = await authed(() => client.api.guild.detail({ guildId: 0 }));
    await learnNames(guild.members.map((m) => m.userId));
  } catch (e) {
    if (!(e instanceof RsgameError && e.code === 400201)) toast(errMsg(e));
    guild = null;
  }
  showGuild();
  if (guild) send(ID.ChatHistory, { chatType: 5, limit: 30 });
}

async function guildCall(path: string, body: unknown): Promise<void> {
  try {
    await authed(() => client.call(path, body, true));
  } catch (e) {
    toast(errMsg(e));
  }
  await refreshGuild();
}

function showGuild(): void {
  $("guild-none").hidden = guild !== null;
  $("guild-box").hidden = guild === null;
  if (!guild) return;
  const g = guild.guild;
  const role = guild.myRole ?? "member";
  const officer = role === "officer" || role === "leader";
  $("guild-title").textContent = g.name;
  $("guild-size").textContent = `${g.members}/${g.maxMembers}${g.open ? " · open" : ""}`;
  $("guild-role").textContent = t(role);
  $("guild-notice").textContent = g.notice || t("noNotice");
  $("guild-notice-form").hidden = !officer;
  $("guild-officer").hidden = !officer;
  const rank = { member: 1, officer: 2, leader: 3 } as Record<string, number>;
  $("guild-members").replaceChildren(
    ...guild.members.map((mem) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "grow";
      name.textContent = `${mem.online ? "● " : "○ "}${nameOf(mem.userId)} · ${t(mem.role)}${mem.userId === world.me.id ? ` (${t("you")})` : ""}`;
      li.append(name);
      if (mem.userId !== world.me.id && officer && rank[mem.role] < rank[role]) {
        const kick = document.createElement("button");
        kick.textContent = t("remove");
        kick.onclick = () => void guildCall("/game/v1/guild/kick", { userId: mem.userId });
        li.append(kick);
      }
      if (mem.userId !== world.me.id && role === "leader") {
        const up = document.createElement("button");
        up.textContent = t(mem.role === "member" ? "makeOfficer" : "makeLeader");
        up.onclick = () =>
          void guildCall("/game/v1/guild/role", { userId: mem.userId, role: mem.role === "member" ? "officer" : "leader" });
        li.append(up);
      }
      return li;
    }),
  );
  if (officer) void showRequests();
}

async function showRequests(): Promise<void> {
  try {
    const list = await authed(() => client.api.guild.requests());
    await learnNames(list.map((r) => r.userId));
    $("guild-requests").replaceChildren(
      ...list.map((r) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.className = "grow";
        name.textContent = t("asksToJoin", { name: nameOf(r.userId) });
        const yes = document.createElement("button");
        yes.textContent = t("accept");
        yes.onclick = () => void guildCall("/game/v1/guild/answer", { userId: r.userId, accept: true });
        const no = document.createElement("button");
        no.textContent = t("decline");
        no.onclick = () => void guildCall("/game/v1/guild/answer", { userId: r.userId, accept: false });
        li.append(name, yes, no);
        return li;
      }),
    );
  } catch (e) {
    toast(errMsg(e));
  }
}

$("guild-create-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = $<HTMLInputElement>("guild-name").value;
  void guildCall("/game/v1/guild/create", { name, open: $<HTMLInputElement>("guild-open").checked }).then(() => refreshBag());
});
$("guild-search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void (async () => {
    try {
      const list = await authed(() => client.api.guild.search({ name: $<HTMLInputElement>("guild-search").value }));
      $("guild-found").replaceChildren(
        ...list.map((g) => {
          const li = document.createElement("li");
          const name = document.createElement("span");
          name.className = "grow";
          name.textContent = `${g.name} · ${g.members}/${g.maxMembers} · ${t(g.open ? "open" : "byRequest")}`;
          const join = document.createElement("button");
          join.textContent = t(g.open ? "join" : "askToJoin");
          join.onclick = () => void guildCall("/game/v1/guild/join", { guildId: g.id });
          li.append(name, join);
          return li;
        }),
      );
    } catch (e) {
      toast(errMsg(e));
    }
  })();
});
$("guild-leave").onclick = () => void guildCall("/game/v1/guild/leave", {});
$("guild-notice-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void guildCall("/game/v1/guild/notice", { notice: $<HTMLInputElement>("guild-notice-text").value });
});
$("guild-invite-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const userId = pickPlayer($<HTMLInputElement>("guild-invite-id").value);
  if (userId > 0) void guildCall("/game/v1/guild/invite", { userId });
});

// ---- party -------------------------------------------------------------------------------

/** The party the player is in (its last PartyUpdate), or null. */
let party: any = null;

const PARTY_EVENTS: Record<number, string> = {
  [pb.PartyEvent.PARTY_EVENT_CREATED]: "pCreated",
  [pb.PartyEvent.PARTY_EVENT_JOINED]: "pJoined",
  [pb.PartyEvent.PARTY_EVENT_LEFT]: "pLeft",
  [pb.PartyEvent.PARTY_EVENT_KICKED]: "pKicked",
  [pb.PartyEvent.PARTY_EVENT_INVITED]: "pInvited",
  [pb.PartyEvent.PARTY_EVENT_CLOSED]: "pClosed",
};

function onParty(m: any): void {
  const me = world.me.id;
  const subject = Number(m.subject);
  for (const p of m.members ?? []) names.set(Number(p.userId), p.nickname);
  const member = (m.members ?? []).some((p: any) => Number(p.userId) === me);
  if (m.event === pb.PartyEvent.PARTY_EVENT_INVITED && subject === me && !member) {
    // An invitation: the id to join with, filled in.
    $<HTMLInputElement>("party-join-id").value = m.partyId;
    toast(t("partyInvite", { name: nameOf(Number(m.leader)) }));
    return;
  }
  party = member ? m : null;
  if (m.event !== pb.PartyEvent.PARTY_EVENT_NONE && (subject !== me || !member)) toast(t(PARTY_EVENTS[m.event] ?? "pChanged", { who: nameOf(subject) }));
  showParty();
}

function showParty(): void {
  $("party-none").hidden = party !== null;
  $("party-join-form").hidden = party !== null;
  $("party-box").hidden = party === null;
  if (!party) return;
  $("party-id").textContent = party.partyId;
  $("party-size").textContent = `${(party.members ?? []).length}/${party.maxSize}${party.open ? ` · ${t("open")}` : ""}`;
  const leading = Number(party.leader) === world.me.id;
  const items = (party.members ?? []).map((p: any) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "grow";
    const id = Number(p.userId);
    name.textContent = `${p.nickname || id}${id === Number(party.leader) ? ` ★ ${t("leader")}` : ""}${id === world.me.id ? ` (${t("you")})` : ""}`;
    li.append(name);
    if (leading && id !== world.me.id) {
      const kick = document.createElement("button");
      kick.textContent = t("remove");
      kick.onclick = () => send(ID.PartyKick, { partyId: party.partyId, userId: id });
      li.append(kick);
    }
    return li;
  });
  $("party-list").replaceChildren(...items);
}

$("party-create").onclick = () => send(ID.PartyCreate, { open: $<HTMLInputElement>("party-open").checked, maxSize: 0 });
$("party-leave").onclick = () => party && send(ID.PartyLeave, { partyId: party.partyId });
$("party-join-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send(ID.PartyJoin, { partyId: $<HTMLInputElement>("party-join-id").value.trim() });
});
$("party-invite-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const userId = pickPlayer($<HTMLInputElement>("party-invite-id").value);
  if (party && userId > 0) send(ID.PartyInvite, { partyId: party.partyId, userId });
});

$("rooms-refresh").onclick = () => send(ID.RoomList, { type: 0 });
$("room-quit").onclick = () => send(ID.QuitRoom, { roomId });
$("room-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send(ID.CreateRoom, {
    name: $<HTMLInputElement>("room-name").value,
    type: Number($<HTMLSelectElement>("room-type").value),
    maxUser: 8,
    password: $<HTMLInputElement>("room-password").value,
  });
});
for (const b of document.querySelectorAll<HTMLButtonElement>(".pad button")) {
  b.onclick = () => lockstep.press(b.dataset.dir ?? "");
}

// ---- bag, shop, ranks (REST) -------------------------------------------------------------

/** A REST call with the player's token (the SDK refreshes it when due); a session that ended
 * sends the player to the login form. */
async function authed<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (!client.session) showAuth(t("sessionExpired"));
    throw e;
  }
}

/** The coins the bag last showed; -1 before it did. */
let coinsNow = -1;

/** What the player cannot afford is not offered. */
function priceShop(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>("#shop-list button")) {
    b.disabled = coinsNow >= 0 && Number(b.dataset.price) > coinsNow;
  }
}

function showPack(p: Pack): void {
  levelSpan = { from: p.levelExp ?? 0, to: p.nextLevelExp ?? 0, level: p.player.level };
  if (!world.levelKnown) {
    world.me.exp = p.player.exp;
    world.me.level = p.player.level;
  }
  showExp();
  $("bag-coins").textContent = String(p.player.coins);
  coinsNow = p.player.coins;
  priceShop();
  $("bag-level").textContent = String(p.player.level);
  $("bag-attack").textContent = String(p.totalAttack);
  $("bag-defence").textContent = String(p.totalDefence);
  $("me-coins").textContent = String(p.player.coins);
  const items = p.items.map((it) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "grow";
    name.textContent = `${it.goods.name} ×${it.count}${it.equipped ? ` (${t("equipped")})` : ""}`;
    li.append(name);
    if (it.goods.kind !== "material" && !it.equipped) {
      const use = document.createElement("button");
      use.textContent = t(it.goods.kind === "equipment" ? "equip" : "use");
      use.onclick = async () => {
        // A heal at full health would spend the potion for nothing.
        if (it.goods.effect && "heal" in it.goods.effect && world.me.hp >= world.me.maxHp && world.me.maxHp > 0) return toast(t("fullHp"));
        try {
          showPack(await authed(() => client.api.game.useGoods({ id: it.goods.id })));
          toast(t("used", { item: it.goods.name }));
        } catch (e) {
          toast(errMsg(e));
        }
      };
      li.append(use);
    }
    return li;
  });
  $("bag-list").replaceChildren(...items);
}

async function refreshBag(): Promise<void> {
  try {
    showPack(await authed(() => client.api.game.getPack()));
  } catch (e) {
    toast(errMsg(e));
  }
}

async function refreshShop(): Promise<void> {
  try {
    const list = await client.api.game.getShop();
    $("shop-list").replaceChildren(
      ...list.map((s) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.className = "grow";
        name.textContent = `${s.goods.name} (${describe(s.goods)}) · ${s.price} coins`;
        const buy = document.createElement("button");
        buy.textContent = t("buy");
        buy.dataset.listing = String(s.id);
        buy.dataset.price = String(s.price);
        buy.onclick = async () => {
          try {
            showPack(await authed(() => client.api.game.buyGoods({ id: s.id, count: 1 })));
            $("shop-msg").textContent = "";
            toast(t("bought", { item: s.goods.name }));
          } catch (e) {
            $("shop-msg").textContent = errMsg(e);
          }
        };
        li.append(name, buy);
        return li;
      }),
    );
    priceShop();
  } catch (e) {
    toast(errMsg(e));
  }
}

// ---- inbox (REST, with MailNotice pushes) -------------------------------------------------

let goodsNames = new Map<number, string>();

function mailItem(m: Mail): HTMLLIElement {
  const li = document.createElement("li");
  li.className = m.read ? "mail" : "mail unread";
  li.dataset.mail = String(m.id);
  const text = document.createElement("span");
  text.className = "grow";
  const title = document.createElement("b");
  title.textContent = m.title;
  const gifts = [m.coins > 0 ? `${m.coins} coins` : "", ...m.goods.map((g) => `${goodsNames.get(g.goods_id) ?? `goods ${g.goods_id}`} ×${g.count}`)]
    .filter(Boolean)
    .join(", ");
  const body = document.createElement("small");
  body.textContent = [m.body, gifts ? `Attached: ${gifts}${m.claimed ? " (claimed)" : ""}` : ""].filter(Boolean).join(" · ");
  text.append(title, document.createElement("br"), body);
  li.append(text);
  const act = (label: string, run: () => Promise<void>) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.onclick = async () => {
      try {
        await run();
      } catch (e) {
        toast(errMsg(e));
      }
      void refreshMail();
    };
    li.append(b);
  };
  if (gifts && !m.claimed) {
    act(t("claim"), async () => {
      await authed(() => client.api.inbox.claim({ id: m.id }));
      toast(t("claimed", { what: gifts }));
      void refreshBag();
    });
  } else {
    act(t("delete"), async () => {
      await authed(() => client.api.inbox.delete({ ids: [m.id] }));
    });
  }
  return li;
}

async function refreshMail(): Promise<void> {
  try {
    if (goodsNames.size === 0) {
      const shop = await client.api.game.getShop();
      goodsNames = new Map(shop.map((s) => [s.goods.id, s.goods.name]));
    }
    const page = await authed(() => client.api.inbox.list({ limit: 50 }));
    $("mail-list").replaceChildren(...page.mails.map(mailItem));
    $("mail-empty").hidden = page.mails.length > 0;
    $("mail-unread").hidden = page.unread === 0;
    $("mail-unread").textContent = String(page.unread);
    // Opened: what is on screen counts as read.
    const unread = page.mails.filter((m) => !m.read).map((m) => m.id);
    if (!$("panel-mail").hidden && unread.length > 0) {
      await authed(() => client.api.inbox.read({ ids: unread }));
      $("mail-unread").hidden = true;
    }
  } catch (e) {
    toast(errMsg(e));
  }
}

let rankBy: RankBy = "score";
async function refreshRanks(): Promise<void> {
  try {
    const r = await authed(() => client.api.game.getRank({ by: rankBy, page: 1, pageSize: 20 }));
    await learnNames(r.list.map((e) => e.userId));
    const line = (rank: number, who: string, value: number, me: boolean) => {
      const li = document.createElement("li");
      const n = document.createElement("span");
      n.className = "rank";
      n.textContent = `${rank}.`;
      const name = document.createElement("span");
      name.className = me ? "grow me" : "grow";
      name.textContent = who;
      const v = document.createElement("b");
      v.textContent = String(value);
      li.append(n, name, v);
      return li;
    };
    const items = r.list.map((e) => line(e.rank, nameOf(e.userId), e.value, e.userId === world.me.id));
    if (r.me && !r.list.some((e) => e.userId === world.me.id)) items.push(line(r.me.rank, t("you"), r.me.value, true));
    $("rank-list").replaceChildren(...items);
  } catch (e) {
    toast(errMsg(e));
  }
}
for (const b of $("rank-tabs").querySelectorAll<HTMLButtonElement>("button")) {
  b.onclick = () => {
    rankBy = b.dataset.by === "level" ? "level" : "score";
    for (const o of $("rank-tabs").querySelectorAll("button")) o.classList.toggle("on", o === b);
    void refreshRanks();
  };
}

// ---- panels, respawn, logout -------------------------------------------------------------

function panel(name: string): void {
  for (const b of $("panels").querySelectorAll<HTMLButtonElement>("button")) b.classList.toggle("on", b.dataset.panel === name);
  for (const p of document.querySelectorAll<HTMLElement>(".panel")) p.hidden = p.id !== `panel-${name}`;
  if (name === "bag") void refreshBag();
  if (name === "shop") void refreshShop();
  if (name === "ranks") void refreshRanks();
  if (name === "mail") void refreshMail();
  if (name === "rooms") send(ID.RoomList, { type: 0 });
  if (name === "friends") send(ID.MyFriend, { type: 1 });
}
for (const b of $("panels").querySelectorAll<HTMLButtonElement>("button")) b.onclick = () => panel(b.dataset.panel ?? "chat");

$("respawn").onclick = () => world.respawn();

// Phones: the panels are a sheet over the world, opened and closed by the Menu button.
$("menu").onclick = () => $("game").classList.toggle("menu-open");

// The on-screen stick: a drag from its centre steers, as far as the knob is pushed.
{
  const stick = $("stick");
  const knob = $("knob");
  let held: number | null = null;
  const steer = (ev: PointerEvent) => {
    const r = stick.getBoundingClientRect();
    const radius = r.width / 2;
    let dx = (ev.clientX - (r.left + radius)) / radius;
    let dz = (ev.clientY - (r.top + radius)) / radius;
    const len = Math.hypot(dx, dz);
    if (len > 1) {
      dx /= len;
      dz /= len;
    }
    knob.style.transform = `translate(${dx * radius * 0.6}px, ${dz * radius * 0.6}px)`;
    world.stick = len < 0.15 ? null : { x: dx, z: dz };
  };
  const release = (ev: PointerEvent) => {
    if (ev.pointerId !== held) return;
    held = null;
    world.stick = null;
    knob.style.transform = "";
  };
  stick.addEventListener("pointerdown", (ev) => {
    held = ev.pointerId;
    stick.setPointerCapture(ev.pointerId);
    steer(ev);
    ev.preventDefault();
  });
  stick.addEventListener("pointermove", (ev) => {
    if (ev.pointerId === held) steer(ev);
  });
  stick.addEventListener("pointerup", release);
  stick.addEventListener("pointercancel", release);
  $("attack-btn").addEventListener("pointerdown", (ev) => {
    ev.preventDefault();
    world.attackNearest();
  });
}
lockstep.nameOf = (id) => nameOf(id);
$("logout").onclick = async () => {
  const leaving = conn;
  conn = null;
  // The server saves the player and answers; a dead link is no reason to stay logged in.
  await leaving?.logout().catch(() => undefined);
  await client.logout().catch(() => undefined);
  // Back to a clean login form: no password left filled in, not on Register.
  $<HTMLInputElement>("password").value = "";
  setMode(false);
  showAuth();
};
window.setInterval(() => {
  if (conn?.online) $("rtt").textContent = `${Math.round(conn.rtt)} ms`;
}, 1000);

// Tests and curious players can reach the state from the console.
(window as any).rsgame = { world, lockstep, get conn() { return conn; }, panel, client };

showLang();

// A reload resumes the session kept in this tab.
if (client.session) loggedIn().catch((e) => showAuth(errMsg(e)));
else showAuth();
