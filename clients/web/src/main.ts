// rsgame's browser client: log in over REST, then play over one WebSocket to the game node
// the login reply names. Screens: log in / register (captcha when the server asks), the
// world, chat, friends, rooms, lockstep rooms, bag, shop and leaderboard.
import * as api from "./api";
import { ID } from "./gen/ids";
import { Lockstep } from "./lockstep";
import { Conn, Status, wsUrl } from "./net";
import { World } from "./world";
import { pb } from "./gen/game.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let session: api.Session | null = null;
let conn: Conn | null = null;

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
  $("auth-submit").textContent = reg ? "Register" : "Log in";
  $("auth-error").textContent = "";
}

async function showCaptcha(): Promise<void> {
  try {
    const c = await api.captcha();
    captchaKey = c.key;
    $<HTMLImageElement>("captcha-img").src = c.image;
    $("captcha-img").dataset.key = c.key;
    $<HTMLInputElement>("captcha-code").value = "";
    $("captcha-row").hidden = false;
  } catch (e) {
    $("auth-error").textContent = (e as Error).message;
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
    session = registering ? await api.register(user, pass, nick, captcha) : await api.login(user, pass, captcha);
    $("captcha-row").hidden = true;
    enterGame();
  } catch (e) {
    const err = e as api.ApiError;
    $("auth-error").textContent = err.message;
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
    session = await api.loginGuest(captcha);
    $("captcha-row").hidden = true;
    enterGame();
  } catch (e) {
    const err = e as api.ApiError;
    $("auth-error").textContent = err.message;
    // Many new guests from one address: the server wants a captcha for another.
    if (err.code === 400508 || err.code === 400509) await showCaptcha();
  }
}

// ---- forgot password: a code to the account's phone or email, then a new password ----------

let resetCaptchaKey = "";
let resetKey = "";

async function showResetCaptcha(): Promise<void> {
  try {
    const c = await api.captcha();
    resetCaptchaKey = c.key;
    $<HTMLImageElement>("reset-captcha-img").src = c.image;
    $("reset-captcha-img").dataset.key = c.key;
    $<HTMLInputElement>("reset-captcha").value = "";
  } catch (e) {
    $("reset-error").textContent = (e as Error).message;
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
    resetKey = await api.sendCode(target, api.Purpose.reset, captcha);
    // Where the code's key is, for whoever drives this page (the browser test).
    $("reset-form").dataset.key = resetKey;
    $("reset-error").textContent = "Code sent: check your phone or email.";
    $("reset-error").className = "note";
  } catch (e) {
    $("reset-error").textContent = (e as Error).message;
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
    $("reset-error").textContent = "Send yourself a code first.";
    return;
  }
  $("reset-error").className = "error";
  try {
    session = await api.resetPassword(target, code, resetKey, password);
    showReset(false);
    enterGame();
  } catch (e) {
    $("reset-error").textContent = (e as Error).message;
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

const world = new World($<HTMLCanvasElement>("view"), (id, m) => conn?.send(id, m));
const lockstep = new Lockstep($<HTMLCanvasElement>("lockstep"), (id, m) => conn?.send(id, m));
const names = new Map<number, string>();
let roomId = 0;
let roomType = 1;

function send(id: number, m: object): void {
  conn?.send(id, m);
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
    const list = await authed<Array<{ userId: number; nickname: string }>>("/usercenter/v1/user/profiles", {
      userIds: unknown,
    });
    for (const p of list) names.set(p.userId, p.nickname);
  } catch {
    // Names are a nicety: ids stay where the look-up fails.
  }
}

function nameOf(id: number): string {
  if (id === world.me.id) return world.me.name || "me";
  return names.get(id) ?? world.entities.get(id)?.name ?? `#${id}`;
}

function status(s: Status, detail?: string): void {
  const el = $("status");
  el.textContent = s === "offline" && detail ? `offline: ${detail}` : s;
  el.className = `status ${s}`;
  if (s === "kicked") toast("You logged in somewhere else: this page is disconnected.");
  if (s !== "online" && ticket) {
    // The server drops a ticket when its connection goes.
    ticket = null;
    showMatch("the search stopped with the connection");
  }
}

function showStats(): void {
  const m = world.me;
  $("me-name").textContent = `${m.name} #${m.id}`;
  $("me-level").textContent = String(m.level);
  $("me-hp").textContent = String(m.hp);
  $("me-maxhp").textContent = String(m.maxHp);
  $("me-coins").textContent = String(m.coins);
  $("dead").hidden = !m.dead || !world.active;
  $("dead-text").textContent = world.killedBy ? `You were killed by ${world.killedBy}.` : "You died.";
}

world.onStats = showStats;
world.onReward = () => void refreshBag();
world.onPick = (e) => {
  $<HTMLInputElement>("chat-to").value = String(e.id);
  $<HTMLInputElement>("friend-id").value = String(e.id);
  chatTab(3);
  toast(`${e.name} (#${e.id}) selected: chat privately or add as a friend`);
};

function enterGame(): void {
  if (!session) return;
  $("auth").hidden = true;
  $("game").hidden = false;
  world.me.id = session.userId;
  world.me.name = session.nickname || session.username;
  names.set(session.userId, world.me.name);
  showStats();
  conn?.stop();
  conn = new Conn({
    url: wsUrl(session.servers[0]),
    credentials: async () => {
      if (!session) return null;
      const s = await api.freshToken(session);
      if (!s) {
        showAuth("Your session expired: log in again.");
        return null;
      }
      session = s;
      return { userId: s.userId, token: s.accessToken };
    },
    onMessage: onMessage,
    onStatus: status,
  });
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
    case ID.CreateRoomResp:
      toast(m.status === pb.ReplyStatus.REPLY_STATUS_OK ? `room ${m.msg} created` : `not created: ${m.msg}`);
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
      toast(Number(m.userId) === world.me.id ? "you left the room" : `${nameOf(Number(m.userId))} left`);
      break;
    case ID.MyFriendResp:
      showFriends(m.userList ?? []);
      break;
    case ID.FriendStatus:
      names.set(Number(m.userId), m.nickname || m.username);
      toast(`${m.nickname || m.username} is ${m.online ? "online" : "offline"}`);
      send(ID.MyFriend, { type: 1 });
      break;
    case ID.AddFriendResp:
      toast(m.msg || "done");
      send(ID.MyFriend, { type: 1 });
      break;
    case ID.SpawnResp:
      for (const e of m.list ?? []) if (e.kind === pb.EntityKind.ENTITY_KIND_PLAYER) names.set(Number(e.id), e.name);
      break;
    case ID.MailNotice:
      toast(`new mail: ${m.title}`);
      void refreshMail();
      break;
    case ID.MatchTicket:
      ticket = m.ticket;
      showMatch();
      break;
    case ID.MatchRemoveResp:
      ticket = null;
      showMatch("search cancelled");
      break;
    case ID.MatchTimeout:
      ticket = null;
      showMatch("nobody to play with right now: try again");
      break;
    case ID.MatchFound: {
      ticket = null;
      const others = (m.players ?? []).filter((p: any) => Number(p.userId) !== world.me.id);
      for (const p of m.players ?? []) names.set(Number(p.userId), p.nickname);
      showMatch(`matched with ${others.map((p: any) => p.nickname || p.userId).join(", ")}`);
      // The demo plays on one node; a match elsewhere is announced, not followed.
      if (m.here) send(ID.EnterRoom, { roomId: m.roomId });
      else toast(`your match plays on another game node (${m.nodeId})`);
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
      $("pvp").hidden = !world.pvp;
      break;
    case ID.LockstepFrames:
      lockstep.handle(m);
      $("lockstep-digest").textContent = `${lockstep.frame} ${lockstep.digest()}`;
      break;
    case ID.ErrorResp:
      toast(`error ${m.code}: ${m.msg}`);
      if (conn && !conn.online && session && m.code === 400103) {
        // The game login refused the token (revoked, or our clock is off): refresh it
        // before the next attempt; if that fails too, credentials() sends us to log in.
        session = { ...session, refreshAfter: 0 };
      }
      break;
    case ID.LogoutResp:
      if (m.type === pb.LogoutType.LOGOUT_TYPE_ELSEWHERE) showAuth("You logged in somewhere else.");
      if (m.type === pb.LogoutType.LOGOUT_TYPE_ENDED) {
        // Banned, or logged out everywhere: the tokens are dead; only a new login helps.
        session = null;
        api.saveSession(null);
        showAuth("This account's sessions were ended. Log in again.");
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
  $("view").hidden = ls;
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

function chatTab(t: number): void {
  chatType = t;
  for (const b of $("chat-tabs").querySelectorAll("button")) b.classList.toggle("on", b.dataset.chat === String(t));
  $("chat-to").hidden = t !== 3;
  $("chat-log").replaceChildren(...chats[t]);
  $("chat-log").scrollTop = 1e9;
}

/** Messages already shown: history after a reconnect overlaps what arrived live. */
const seen = new Set<string>();

function addChat(c: any): void {
  const t = Number(c.chatType) || 1;
  const from = Number(c.userId);
  const key = `${t}|${from}|${Number(c.objId)}|${Number(c.sendTime)}|${c.msg}`;
  if (seen.has(key)) return;
  seen.add(key);
  if (seen.size > 2000) seen.delete(seen.values().next().value as string);
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  const to = Number(c.objId);
  who.textContent = t === 3 ? `${nameOf(from)} → ${nameOf(to)}: ` : `${nameOf(from)}: `;
  li.append(who, document.createTextNode(c.msg));
  if (t === 3) li.className = "private";
  li.dataset.sendTime = String(c.sendTime);
  const list = chats[t] ?? chats[1];
  list.push(li);
  if (list.length > 200) list.shift();
  if (t === chatType) {
    $("chat-log").append(li);
    $("chat-log").scrollTop = 1e9;
  } else if (t === 3 && from !== world.me.id) {
    toast(`private message from ${nameOf(from)}`);
  }
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
    const to = Number($<HTMLInputElement>("chat-to").value);
    if (!to) return toast("who to? enter a user id");
    msg.objId = to;
  }
  send(ID.ChatMsg, msg);
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
    name.textContent = `${u.nickname || u.username} #${u.userId}${u.online && u.roomId ? ` · in ${u.roomId}` : ""}`;
    const chat = document.createElement("button");
    chat.textContent = "Chat";
    chat.onclick = () => {
      $<HTMLInputElement>("chat-to").value = String(u.userId);
      panel("chat");
      chatTab(3);
      send(ID.ChatHistory, { chatType: 3, objId: u.userId, limit: 30 });
    };
    li.append(dot, name, chat);
    return li;
  });
  $("friend-list").replaceChildren(...items);
}

$("friend-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = Number($<HTMLInputElement>("friend-id").value);
  if (!id) return;
  send(ID.AddFriend, { userId: id, type: Number($<HTMLSelectElement>("friend-type").value) });
});

// ---- rooms -------------------------------------------------------------------------------

const ROOM_TYPES: Record<number, string> = { 1: "public", 2: "private", 3: "lockstep", 4: "private lockstep" };

function showRooms(list: any[]): void {
  const items = list.map((r) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "grow";
    const members = (r.userList ?? []).length;
    name.textContent = `${r.name} (${r.roomId}) · ${ROOM_TYPES[r.type] ?? r.type}${members ? ` · ${members}/${r.maxUser}` : ""}`;
    const enter = document.createElement("button");
    enter.textContent = Number(r.roomId) === roomId ? "here" : "Enter";
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

function showMatch(text?: string): void {
  $("quick-match").textContent = ticket ? "Cancel" : "Quick match";
  $("match-status").textContent = ticket ? "looking for a player…" : (text ?? "");
}

$("quick-match").onclick = () => {
  if (ticket) send(ID.MatchRemove, { ticket });
  // A party plays the squares together (up to four); alone, a duel.
  else send(ID.MatchAdd, { mode: party ? "squares" : "duel" });
};

// ---- guild (REST, with GuildNotice pushes) ------------------------------------------------

/** The player's guild (its detail), or null. */
let guild: api.GuildDetail | null = null;

const GUILD_EVENTS: Record<number, string> = {
  [pb.GuildEvent.GUILD_EVENT_CREATED]: "founded",
  [pb.GuildEvent.GUILD_EVENT_JOINED]: "joined",
  [pb.GuildEvent.GUILD_EVENT_REQUESTED]: "asked to join",
  [pb.GuildEvent.GUILD_EVENT_LEFT]: "left",
  [pb.GuildEvent.GUILD_EVENT_KICKED]: "was removed from",
  [pb.GuildEvent.GUILD_EVENT_ROLE]: "has a new role in",
  [pb.GuildEvent.GUILD_EVENT_NOTICE]: "changed the notice of",
  [pb.GuildEvent.GUILD_EVENT_INVITED]: "was invited to",
  [pb.GuildEvent.GUILD_EVENT_DECLINED]: "was not let into",
  [pb.GuildEvent.GUILD_EVENT_CLOSED]: "closed",
};

function onGuildNotice(m: any): void {
  const who = Number(m.subject) === world.me.id ? "you" : nameOf(Number(m.subject));
  toast(`${who} ${GUILD_EVENTS[m.event] ?? "changed"} ${m.name}`);
  void refreshGuild();
}

async function refreshGuild(): Promise<void> {
  try {
    guild = await authed<api.GuildDetail>("/game/v1/guild/detail", { guildId: 0 });
    await learnNames(guild.members.map((m) => m.userId));
  } catch (e) {
    if (!(e instanceof api.ApiError && e.code === 400201)) toast((e as Error).message);
    guild = null;
  }
  showGuild();
  if (guild) send(ID.ChatHistory, { chatType: 5, limit: 30 });
}

async function guildCall(path: string, body: unknown): Promise<void> {
  try {
    await authed(path, body);
  } catch (e) {
    toast((e as Error).message);
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
  $("guild-role").textContent = role;
  $("guild-notice").textContent = g.notice || "(no notice)";
  $("guild-notice-form").hidden = !officer;
  $("guild-officer").hidden = !officer;
  const rank = { member: 1, officer: 2, leader: 3 } as Record<string, number>;
  $("guild-members").replaceChildren(
    ...guild.members.map((mem) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "grow";
      name.textContent = `${mem.online ? "● " : "○ "}${nameOf(mem.userId)} · ${mem.role}${mem.userId === world.me.id ? " (you)" : ""}`;
      li.append(name);
      if (mem.userId !== world.me.id && officer && rank[mem.role] < rank[role]) {
        const kick = document.createElement("button");
        kick.textContent = "Remove";
        kick.onclick = () => void guildCall("/game/v1/guild/kick", { userId: mem.userId });
        li.append(kick);
      }
      if (mem.userId !== world.me.id && role === "leader") {
        const up = document.createElement("button");
        up.textContent = mem.role === "member" ? "Make officer" : "Make leader";
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
    const list = await authed<api.JoinRequest[]>("/game/v1/guild/requests", {});
    await learnNames(list.map((r) => r.userId));
    $("guild-requests").replaceChildren(
      ...list.map((r) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.className = "grow";
        name.textContent = `${nameOf(r.userId)} asks to join`;
        const yes = document.createElement("button");
        yes.textContent = "Accept";
        yes.onclick = () => void guildCall("/game/v1/guild/answer", { userId: r.userId, accept: true });
        const no = document.createElement("button");
        no.textContent = "Decline";
        no.onclick = () => void guildCall("/game/v1/guild/answer", { userId: r.userId, accept: false });
        li.append(name, yes, no);
        return li;
      }),
    );
  } catch (e) {
    toast((e as Error).message);
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
      const list = await authed<api.Guild[]>("/game/v1/guild/search", { name: $<HTMLInputElement>("guild-search").value });
      $("guild-found").replaceChildren(
        ...list.map((g) => {
          const li = document.createElement("li");
          const name = document.createElement("span");
          name.className = "grow";
          name.textContent = `${g.name} · ${g.members}/${g.maxMembers}${g.open ? " · open" : " · by request"}`;
          const join = document.createElement("button");
          join.textContent = g.open ? "Join" : "Ask to join";
          join.onclick = () => void guildCall("/game/v1/guild/join", { guildId: g.id });
          li.append(name, join);
          return li;
        }),
      );
    } catch (e) {
      toast((e as Error).message);
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
  void guildCall("/game/v1/guild/invite", { userId: Number($<HTMLInputElement>("guild-invite-id").value) });
});

// ---- party -------------------------------------------------------------------------------

/** The party the player is in (its last PartyUpdate), or null. */
let party: any = null;

const PARTY_EVENTS: Record<number, string> = {
  [pb.PartyEvent.PARTY_EVENT_CREATED]: "created the party",
  [pb.PartyEvent.PARTY_EVENT_JOINED]: "joined the party",
  [pb.PartyEvent.PARTY_EVENT_LEFT]: "left the party",
  [pb.PartyEvent.PARTY_EVENT_KICKED]: "was removed from the party",
  [pb.PartyEvent.PARTY_EVENT_INVITED]: "was invited to the party",
  [pb.PartyEvent.PARTY_EVENT_CLOSED]: "closed the party",
};

function onParty(m: any): void {
  const me = world.me.id;
  const subject = Number(m.subject);
  for (const p of m.members ?? []) names.set(Number(p.userId), p.nickname);
  const member = (m.members ?? []).some((p: any) => Number(p.userId) === me);
  if (m.event === pb.PartyEvent.PARTY_EVENT_INVITED && subject === me && !member) {
    // An invitation: the id to join with, filled in.
    $<HTMLInputElement>("party-join-id").value = m.partyId;
    toast(`${nameOf(Number(m.leader))} invited you to a party: Party panel → Join`);
    return;
  }
  party = member ? m : null;
  if (m.event !== pb.PartyEvent.PARTY_EVENT_NONE && (subject !== me || !member)) toast(`${nameOf(subject)} ${PARTY_EVENTS[m.event] ?? "changed the party"}`);
  showParty();
}

function showParty(): void {
  $("party-none").hidden = party !== null;
  $("party-join-form").hidden = party !== null;
  $("party-box").hidden = party === null;
  if (!party) return;
  $("party-id").textContent = party.partyId;
  $("party-size").textContent = `${(party.members ?? []).length}/${party.maxSize}${party.open ? " · open" : ""}`;
  const leading = Number(party.leader) === world.me.id;
  const items = (party.members ?? []).map((p: any) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "grow";
    const id = Number(p.userId);
    name.textContent = `${p.nickname || id}${id === Number(party.leader) ? " ★ leader" : ""}${id === world.me.id ? " (you)" : ""}`;
    li.append(name);
    if (leading && id !== world.me.id) {
      const kick = document.createElement("button");
      kick.textContent = "Remove";
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
  const userId = Number($<HTMLInputElement>("party-invite-id").value);
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

async function authed<T>(path: string, body: unknown): Promise<T> {
  if (!session) throw new api.ApiError(400103, "log in first");
  const s = await api.freshToken(session);
  if (!s) {
    showAuth("Your session expired: log in again.");
    throw new api.ApiError(400103, "session expired");
  }
  session = s;
  return api.call<T>(path, body, s.accessToken);
}

/** The coins the bag last showed; -1 before it did. */
let coinsNow = -1;

/** What the player cannot afford is not offered. */
function priceShop(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>("#shop-list button")) {
    b.disabled = coinsNow >= 0 && Number(b.dataset.price) > coinsNow;
  }
}

function showPack(p: api.Pack): void {
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
    name.textContent = `${it.goods.name} ×${it.count}${it.equipped ? " (equipped)" : ""}`;
    li.append(name);
    if (it.goods.kind !== "material" && !it.equipped) {
      const use = document.createElement("button");
      use.textContent = it.goods.kind === "equipment" ? "Equip" : "Use";
      use.onclick = async () => {
        try {
          showPack(await authed<api.Pack>("/game/v1/game/useGoods", { id: it.goods.id }));
          toast(`${it.goods.name} used`);
        } catch (e) {
          toast((e as Error).message);
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
    showPack(await authed<api.Pack>("/game/v1/game/getPack", {}));
  } catch (e) {
    toast((e as Error).message);
  }
}

async function refreshShop(): Promise<void> {
  try {
    const list = await api.call<api.ShopItem[]>("/game/v1/game/getShop", {});
    $("shop-list").replaceChildren(
      ...list.map((s) => {
        const li = document.createElement("li");
        const name = document.createElement("span");
        name.className = "grow";
        name.textContent = `${s.goods.name} (${api.describe(s.goods)}) · ${s.price} coins`;
        const buy = document.createElement("button");
        buy.textContent = "Buy";
        buy.dataset.listing = String(s.id);
        buy.dataset.price = String(s.price);
        buy.onclick = async () => {
          try {
            showPack(await authed<api.Pack>("/game/v1/game/buyGoods", { id: s.id, count: 1 }));
            $("shop-msg").textContent = "";
            toast(`bought ${s.goods.name}`);
          } catch (e) {
            $("shop-msg").textContent = (e as Error).message;
          }
        };
        li.append(name, buy);
        return li;
      }),
    );
    priceShop();
  } catch (e) {
    toast((e as Error).message);
  }
}

// ---- inbox (REST, with MailNotice pushes) -------------------------------------------------

let goodsNames = new Map<number, string>();

function mailItem(m: api.Mail): HTMLLIElement {
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
        toast((e as Error).message);
      }
      void refreshMail();
    };
    li.append(b);
  };
  if (gifts && !m.claimed) {
    act("Claim", async () => {
      await authed("/game/v1/inbox/claim", { id: m.id });
      toast(`claimed ${gifts}`);
      void refreshBag();
    });
  } else {
    act("Delete", async () => {
      await authed("/game/v1/inbox/delete", { ids: [m.id] });
    });
  }
  return li;
}

async function refreshMail(): Promise<void> {
  try {
    if (goodsNames.size === 0) {
      const shop = await api.call<api.ShopItem[]>("/game/v1/game/getShop", {});
      goodsNames = new Map(shop.map((s) => [s.goods.id, s.goods.name]));
    }
    const page = await authed<api.InboxPage>("/game/v1/inbox/list", { limit: 50 });
    $("mail-list").replaceChildren(...page.mails.map(mailItem));
    $("mail-empty").hidden = page.mails.length > 0;
    $("mail-unread").hidden = page.unread === 0;
    $("mail-unread").textContent = String(page.unread);
    // Opened: what is on screen counts as read.
    const unread = page.mails.filter((m) => !m.read).map((m) => m.id);
    if (!$("panel-mail").hidden && unread.length > 0) {
      await authed("/game/v1/inbox/read", { ids: unread });
      $("mail-unread").hidden = true;
    }
  } catch (e) {
    toast((e as Error).message);
  }
}

let rankBy = "score";
async function refreshRanks(): Promise<void> {
  try {
    const r = await authed<api.Ranking>("/game/v1/game/getRank", { by: rankBy, page: 1, pageSize: 20 });
    await learnNames(r.list.map((e) => e.userId));
    const items = r.list.map((e) => {
      const li = document.createElement("li");
      li.textContent = `${nameOf(e.userId)} — ${e.value}`;
      return li;
    });
    if (r.me) {
      const li = document.createElement("li");
      li.textContent = `you: #${r.me.rank} — ${r.me.value}`;
      items.push(li);
    }
    $("rank-list").replaceChildren(...items);
  } catch (e) {
    toast((e as Error).message);
  }
}
for (const b of $("rank-tabs").querySelectorAll<HTMLButtonElement>("button")) {
  b.onclick = () => {
    rankBy = b.dataset.by ?? "score";
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
$("logout").onclick = async () => {
  send(ID.Logout, { type: pb.LogoutType.LOGOUT_TYPE_QUIT });
  conn?.stop();
  conn = null;
  if (session) await api.logout(session).catch(() => undefined);
  session = null;
  // Back to a clean login form: no password left filled in, not on Register.
  $<HTMLInputElement>("password").value = "";
  setMode(false);
  showAuth();
};
window.setInterval(() => {
  if (conn?.online) $("rtt").textContent = `${Math.round(conn.rtt)} ms`;
}, 1000);

// Tests and curious players can reach the state from the console.
(window as any).rsgame = { world, lockstep, get conn() { return conn; }, panel };

// A reload resumes the session kept in this tab.
session = api.loadSession();
if (session) enterGame();
else showAuth();
