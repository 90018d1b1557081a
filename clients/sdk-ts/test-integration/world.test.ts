// Against a running server (RSGAME_SDK_SERVER, e.g. http://127.0.0.1:8888; RSGAME_SDK_TCP, e.g.
// tcp://127.0.0.1:8999): two players over REST, then one on a WebSocket and one on the
// gate's TCP port, in the world, in chat, as friends and in a lockstep room; a takeover by a
// third connection speaking JSON. Run by bin/rsgame/tests/sdk.rs (`npm run test:integration`).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client, Code, MessageId, RsgameError, Socket, pb, tcpTransport } from "../src/node.js";

const base = process.env.RSGAME_SDK_SERVER;
const tcp = process.env.RSGAME_SDK_TCP;
const skip = !base || !tcp ? "RSGAME_SDK_SERVER and RSGAME_SDK_TCP name no server" : false;
const nonce = `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;

/** Polls `check` until it holds or `ms` pass. */
async function until<T>(what: string, check: () => T | undefined | null | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Everything a socket received, by id. */
function record(s: Socket) {
  const got: Array<{ id: number; msg: any }> = [];
  s.onMessage((id, msg) => got.push({ id, msg }));
  return got;
}

let ann: Client;
let bob: Client;
let annSock: Socket;
let bobSock: Socket;
let annGot: Array<{ id: number; msg: any }>;
let bobGot: Array<{ id: number; msg: any }>;

before(async () => {
  if (skip) return;
  ann = new Client({ baseUrl: base! });
  bob = new Client({ baseUrl: base! });
  await ann.register({ username: `ann${nonce}`, password: "sdk-secret-1", nickname: `Ann${nonce}` });
  // Bob is a guest: a device id is the whole login.
  await bob.loginDevice({ deviceId: `sdk-test-device-${nonce}` });
});

after(async () => {
  annSock?.stop();
  bobSock?.stop();
});

test("REST: typed routes, typed errors", { skip }, async () => {
  const detail = await ann.api.user.detail();
  assert.equal(detail.userInfo.username, `ann${nonce}`);
  const pack = await ann.api.game.getPack();
  assert.equal(pack.player.userId, ann.session!.userId);
  const [me] = await bob.api.user.profiles({ userIds: [ann.session!.userId] });
  assert.equal(me.nickname, `Ann${nonce}`);
  // An avatar: a multipart upload, then the profile names it.
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
  const file = await ann.upload(new Uint8Array(png), "me.png", "image/png");
  assert.equal(file.info.bytes, png.length);
  const updated = await ann.api.user.update({ avatar: file.info.guid });
  assert.equal(updated.userInfo.avatar, file.info.guid);
  await assert.rejects(ann.upload(new Uint8Array([1, 2, 3]), "me.png", "image/png"), (e: RsgameError) => e.is(Code.BadParam));
  await assert.rejects(
    ann.login({ username: `ann${nonce}`, password: "wrong-password" }),
    (e: RsgameError) => e.is(Code.LoginFailed),
  );
});

test("both log in to the game: WebSocket (protobuf) and TCP", { skip }, async () => {
  annSock = ann.socket();
  bobSock = bob.socket({ transport: tcpTransport(), url: tcp! });
  annGot = record(annSock);
  bobGot = record(bobSock);
  annSock.start();
  bobSock.start();
  await until("both online", () => annSock.online && bobSock.online);
  assert.equal(annSock.me?.userId, ann.session!.userId);
  const rooms = await annSock.request(MessageId.RoomList, { type: 0 });
  assert.ok(rooms.roomList.some((r) => r.roomId === annSock.me!.roomId), "the scene is listed");
  // Both in the same scene.
  if (bobSock.me!.roomId !== annSock.me!.roomId) {
    const entered = await bobSock.request(MessageId.EnterRoom, { roomId: annSock.me!.roomId });
    assert.equal(entered.roomId, annSock.me!.roomId);
  }
});

test("a move is seen by the other player at exactly that position", { skip }, async () => {
  const annId = ann.session!.userId;
  const bobId = bob.session!.userId;
  // Where each stands: the last position each was told of itself.
  const spot = (got: typeof annGot, id: number) => {
    let at = null as null | { X: number; Z: number };
    for (const m of got) {
      if (m.id === MessageId.MoveResp) for (const s of m.msg.siteList) if (s.userId === id) at = s.site;
      if (m.id === MessageId.UserInfo && m.msg.userId === id && m.msg.position) at = m.msg.position;
    }
    return at;
  };
  let a = await until("Ann's spawn", () => spot(annGot, annId));
  const b = await until("Bob's spawn", () => spot(bobGot, bobId));
  // Walk towards Bob (3 units per 100 ms, under the speed limit) until in each other's view.
  const deadline = Date.now() + 20_000;
  while (Math.hypot(b.X - a.X, b.Z - a.Z) > 10 && Date.now() < deadline) {
    const d = Math.hypot(b.X - a.X, b.Z - a.Z);
    a = { X: a.X + ((b.X - a.X) / d) * Math.min(3, d), Z: a.Z + ((b.Z - a.Z) / d) * Math.min(3, d) };
    annSock.send(MessageId.Move, { site: a });
    await new Promise((r) => setTimeout(r, 100));
  }
  const target = { X: a.X + 1.5, Z: a.Z };
  annSock.send(MessageId.Move, { site: target });
  await until("Bob sees Ann at the spot", () =>
    bobGot.some(
      (m) =>
        m.id === MessageId.MoveResp &&
        m.msg.siteList.some((s: pb.UserSite) => s.userId === annId && Math.abs(Number(s.site?.X) - target.X) < 0.01 && Math.abs(Number(s.site?.Z) - target.Z) < 0.01),
    ),
  );
  assert.ok(bobGot.some((m) => m.id === MessageId.SpawnResp), "entities came into Bob's view");
});

test("world chat reaches the other player, stamped by the server", { skip }, async () => {
  const text = `hello from the sdk ${nonce}`;
  annSock.send(MessageId.ChatMsg, { chatType: pb.ChatType.CHAT_TYPE_WORLD, msgType: 1, msg: text });
  const line = await until("Bob reads it", () =>
    bobGot.flatMap((m) => (m.id === MessageId.ChatMsgResp ? m.msg.msgList : [])).find((c: pb.ChatMsg) => c.msg === text),
  );
  assert.equal(line.userId, ann.session!.userId);
  assert.ok(line.sendTime > 0);
  const history = await bobSock.request(MessageId.ChatHistory, { chatType: pb.ChatType.CHAT_TYPE_WORLD, limit: 20 });
  assert.ok(history.msgList.some((c) => c.msg === text), "and it is in the history");
});

test("friends: a request answered with its reply", { skip }, async () => {
  const added = await annSock.request(MessageId.AddFriend, { userId: bob.session!.userId, type: pb.FriendType.FRIEND_TYPE_FRIEND });
  assert.equal(added.status, pb.ReplyStatus.REPLY_STATUS_OK, added.msg);
  const mine = await annSock.request(MessageId.MyFriend, { type: pb.FriendType.FRIEND_TYPE_FRIEND });
  assert.ok(mine.userList.some((u) => u.userId === bob.session!.userId));
});

test("a lockstep room: both players' inputs arrive in the same numbered frames", { skip }, async () => {
  const created = await annSock.request(MessageId.CreateRoom, { name: `sdk ${nonce}`, type: pb.RoomType.ROOM_TYPE_LOCKSTEP, maxUser: 4 });
  assert.equal(created.status, pb.ReplyStatus.REPLY_STATUS_OK, created.msg);
  const roomId = Number(created.msg);
  await until("Ann is in her room", () => annGot.some((m) => m.id === MessageId.EnterRoomResp && m.msg.roomId === roomId));
  const entered = await bobSock.request(MessageId.EnterRoom, { roomId });
  assert.equal(entered.roomId, roomId);
  // Each sends an input per bundle received, as a game does, until a frame holds both.
  const both = new Promise<pb.LockstepFrame>((resolve) => {
    for (const [sock, byte] of [
      [annSock, 1],
      [bobSock, 2],
    ] as const) {
      sock.on(MessageId.LockstepFrames, (m) => {
        const f = m.frames.find((f) => f.inputs?.length === 2);
        if (f) resolve(f as pb.LockstepFrame);
        sock.send(MessageId.LockstepInput, { data: new Uint8Array([byte]) });
      });
    }
  });
  annSock.send(MessageId.LockstepInput, { data: new Uint8Array([1]) });
  const frame = await Promise.race([both, new Promise<never>((_, no) => setTimeout(() => no(new Error("no frame with both inputs in 10 s")), 10_000))]);
  const ids = frame.inputs.map((i) => Number(i.userId));
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), "inputs in ascending player order");
  assert.deepEqual(new Set(ids), new Set([ann.session!.userId, bob.session!.userId]));
  const back = await bobSock.request(MessageId.QuitRoom, { roomId });
  assert.ok(back);
});

test("a login elsewhere takes the player over: the first socket stops for good", { skip }, async () => {
  const second = ann.socket({ wire: "json" });
  second.start();
  await until("the second connection is in", () => second.online);
  await until("the first stopped", () => annSock.stopReason === "takeover");
  assert.equal(annSock.status, "stopped");
  await second.logout();
  assert.equal(second.stopReason, "logout");
  await bobSock.logout();
  await ann.logout();
  assert.equal(ann.session, null);
  // The revoked refresh token no longer works.
  await assert.rejects(bob.call("/usercenter/v1/user/refresh", { refreshToken: "not-a-token" }, false), (e: RsgameError) => e.is(Code.TokenExpired));
});
