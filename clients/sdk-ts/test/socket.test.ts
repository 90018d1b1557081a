import assert from "node:assert/strict";
import { test } from "node:test";
import { Code } from "../src/gen/rest.js";
import { MessageId } from "../src/gen/protocol.js";
import { pb } from "../src/gen/game.js";
import { NO_ANSWER, RsgameError } from "../src/errors.js";
import { Socket, type SocketOptions } from "../src/socket.js";
import { FakeClock, FakeTransport, settle } from "./fakes.js";

function setup(extra: Partial<SocketOptions> = {}) {
  const clock = new FakeClock();
  const transport = new FakeTransport(extra.wire ?? "protobuf");
  const asked: boolean[] = [];
  const statuses: string[] = [];
  const socket = new Socket({
    url: "ws://game/ws",
    transport,
    clock,
    warn: () => {},
    credentials: async (refused) => {
      asked.push(refused);
      return { userId: 7, token: `t${asked.length}` };
    },
    ...extra,
  });
  socket.onStatus((s, d) => statuses.push(d ? `${s}:${d}` : s));
  return { clock, transport, socket, asked, statuses };
}

/** Opens the link and answers the login. */
async function online(t: ReturnType<typeof setup>) {
  await settle();
  const link = t.transport.last;
  link.on.open();
  link.push(MessageId.UserInfo, { userId: 7, roomId: 1000 });
  return link;
}

test("logs in with the credentials and the capabilities, then sends what waited", async () => {
  const t = setup();
  t.socket.start();
  assert.equal(t.socket.send(MessageId.ChatMsg, { chatType: 1, msg: "early" }), true);
  assert.equal(t.socket.send(MessageId.Move, { site: { X: 1, Z: 1 } }), false, "a move goes stale");
  const link = await online(t);
  const sent = link.messages();
  assert.equal(sent[0].id, MessageId.GameLogin);
  assert.deepEqual([sent[0].msg.userId, sent[0].msg.token, sent[0].msg.param], [7, "t1", "caps=all"]);
  assert.equal(sent[1].id, MessageId.ChatMsg);
  assert.equal(sent.length, 2);
  assert.equal(t.socket.status, "online");
  assert.equal(t.socket.me?.roomId, 1000);
});

test("replies are paired first in, first out; an ErrorResp refuses its own request", async () => {
  const t = setup();
  t.socket.start();
  const link = await online(t);
  const a = t.socket.request(MessageId.EnterRoom, { roomId: 1 });
  const b = t.socket.request(MessageId.EnterRoom, { roomId: 2 });
  const f = t.socket.request(MessageId.MyFriend, { type: 1 });
  link.push(MessageId.ErrorResp, { reqId: MessageId.MyFriend, code: 400501, msg: "no" });
  link.push(MessageId.EnterRoomResp, { roomId: 1 });
  link.push(MessageId.EnterRoomResp, { roomId: 2 });
  assert.equal((await a).roomId, 1);
  assert.equal((await b).roomId, 2);
  await assert.rejects(f, (e: RsgameError) => e.code === Code.Forbidden && e.reqId === MessageId.MyFriend);
});

test("a request with no answer times out with 400504", async () => {
  const t = setup({ requestTimeoutMs: 2000 });
  t.socket.start();
  await online(t);
  const r = t.socket.request(MessageId.RoomList, { type: 0 });
  t.clock.advance(2001);
  await assert.rejects(r, (e: RsgameError) => e.code === Code.Timeout);
});

test("other refusals reach onError", async () => {
  const t = setup();
  const errors: number[] = [];
  t.socket.onError((e) => errors.push(e.code));
  t.socket.start();
  const link = await online(t);
  link.push(MessageId.ErrorResp, { reqId: MessageId.ChatMsg, code: 400526, msg: "muted" });
  assert.deepEqual(errors, [Code.Muted]);
});

test("a dropped link fails what was sent on it, keeps what was queued, and reconnects with backoff", async () => {
  const t = setup();
  t.clock.rand = 0; // the shortest jitter: each delay is 0.8 × the base
  t.socket.start();
  const link = await online(t);
  const sent = t.socket.request(MessageId.RoomList, { type: 0 });
  link.drop(1006, "network");
  await assert.rejects(sent, (e: RsgameError) => e.code === NO_ANSWER);
  assert.equal(t.socket.status, "offline");
  const queued = t.socket.request(MessageId.RoomList, { type: 0 }, 60_000);
  // 500 ms × 0.8, then the link fails again and again: 1 s, 2 s… each × 0.8, capped at 10 s.
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    delays.push(t.clock.nextIn() ?? -1);
    t.clock.advance(delays[i]);
    await settle();
    if (i < 6) t.transport.last.drop(1006, "refused");
  }
  assert.deepEqual(delays.slice(0, 6), [400, 800, 1600, 3200, 6400, 8000]);
  const again = t.transport.last;
  again.on.open();
  again.push(MessageId.UserInfo, { userId: 7 });
  again.push(MessageId.RoomListResp, { roomList: [] });
  assert.deepEqual((await queued).roomList, []);
  assert.equal(again.messages()[1].id, MessageId.RoomList, "the queued request went out after the login");
});

test("a connection that lasted starts backing off anew", async () => {
  const t = setup({ heartbeatMs: 60_000 });
  t.clock.rand = 0;
  t.socket.start();
  let link = await online(t);
  link.drop();
  t.clock.advance(400);
  await settle();
  link = t.transport.last;
  link.on.open();
  link.push(MessageId.UserInfo, { userId: 7 });
  t.clock.advance(31_000);
  link.drop();
  assert.equal(t.clock.nextIn(), 400);
});

test("a refused token is refreshed for the next attempt", async () => {
  const t = setup();
  t.socket.start();
  await settle();
  const link = t.transport.last;
  link.on.open();
  link.push(MessageId.ErrorResp, { reqId: MessageId.GameLogin, code: Code.TokenExpired, msg: "expired" });
  assert.deepEqual(link.closed?.code, 4001);
  t.clock.advance(t.clock.nextIn() ?? 0);
  await settle();
  assert.deepEqual(t.asked, [false, true]);
  assert.equal(t.transport.links.length, 2);
});

test("another account's token stops; no credentials stops", async () => {
  const t = setup();
  t.socket.start();
  await settle();
  t.transport.last.on.open();
  t.transport.last.push(MessageId.ErrorResp, { reqId: MessageId.GameLogin, code: Code.Forbidden, msg: "" });
  assert.equal(t.socket.stopReason, "refused");
  const u = setup({ credentials: async () => null });
  u.socket.start();
  await settle();
  assert.equal(u.socket.stopReason, "refused");
  assert.equal(u.transport.links.length, 0);
});

for (const [type, reason] of [
  [pb.LogoutType.LOGOUT_TYPE_ELSEWHERE, "takeover"],
  [pb.LogoutType.LOGOUT_TYPE_ENDED, "ended"],
] as const) {
  test(`LogoutResp type ${type} stops for good (${reason})`, async () => {
    const t = setup();
    t.socket.start();
    const link = await online(t);
    link.push(MessageId.LogoutResp, { type });
    assert.equal(t.socket.status, "stopped");
    assert.equal(t.socket.stopReason, reason);
    assert.ok(link.closed);
    t.clock.advance(60_000);
    await settle();
    assert.equal(t.transport.links.length, 1, "no reconnect");
  });
}

test("the heartbeat pings, measures the round trip, and closes a silent link", async () => {
  const t = setup();
  t.socket.start();
  const link = await online(t);
  t.clock.advance(5000);
  const ping = link.messages().find((m) => m.id === MessageId.Ping);
  assert.ok(ping);
  t.clock.advance(40);
  link.push(MessageId.PingResp, { sn: ping.msg.sn });
  assert.equal(t.socket.rtt, 40);
  t.clock.advance(21_000);
  assert.equal(link.closed?.code, 4003);
  assert.ok(t.statuses.includes("offline:heartbeat timeout"), t.statuses.join());
  await settle();
  assert.equal(t.transport.links.length, 2, "and reconnects");
});

test("logout asks the server, then stops", async () => {
  const t = setup();
  t.socket.start();
  const link = await online(t);
  const done = t.socket.logout();
  assert.equal(link.messages().at(-1)?.id, MessageId.Logout);
  link.push(MessageId.LogoutResp, { type: pb.LogoutType.LOGOUT_TYPE_QUIT });
  await done;
  assert.equal(t.socket.stopReason, "logout");
});

test("JSON text messages work the same way", async () => {
  const t = setup({ wire: "json" });
  t.socket.start();
  const link = await online(t);
  assert.equal(typeof link.sent[0], "string");
  const moves: number[] = [];
  t.socket.on(MessageId.MoveResp, (m) => moves.push(m.siteList.length));
  link.push(MessageId.MoveResp, { siteList: [{ userId: 1, site: { X: 1, Z: 2 } }] });
  assert.deepEqual(moves, [1]);
});

test("a listener that throws does not break the socket", async () => {
  const t = setup();
  t.socket.on(MessageId.UserInfo, () => {
    throw new Error("game bug");
  });
  t.socket.start();
  await online(t);
  assert.equal(t.socket.status, "online");
});

test("the server's notice before a close is the close's reason, not an error", async () => {
  const t = setup();
  const errors: number[] = [];
  t.socket.onError((e) => errors.push(e.code));
  t.socket.start();
  const link = await online(t);
  link.push(MessageId.ErrorResp, { reqId: 0, code: Code.TooManyRequests, msg: "too many messages" });
  link.drop(1008, "policy");
  assert.deepEqual(errors, []);
  assert.ok(t.statuses.includes("offline:400502 too many messages"), t.statuses.join());
});

test("a request that goes unanswered remakes the link: later replies cannot be paired", async () => {
  const t = setup({ requestTimeoutMs: 1000 });
  t.socket.start();
  const link = await online(t);
  const r = t.socket.request(MessageId.RoomList, { type: 0 });
  t.clock.advance(1001);
  await assert.rejects(r, (e: RsgameError) => e.code === Code.Timeout);
  assert.equal(link.closed?.code, 4004);
});

test("a reply that does not decode fails the request waiting for it", async () => {
  const t = setup();
  t.socket.start();
  const link = await online(t);
  const r = t.socket.request(MessageId.RoomList, { type: 0 });
  // A RoomListResp frame whose body is not protobuf (a field with wire type 7).
  link.on.message(new Uint8Array([0, 3, 13, 0x44, 0, 0, 0, 1, 0x0f]));
  await assert.rejects(r, (e: RsgameError) => e.code === Code.BadParam);
  const again = t.socket.request(MessageId.RoomList, { type: 0 });
  link.push(MessageId.RoomListResp, { roomList: [] });
  assert.deepEqual((await again).roomList, []);
});

test("stopped: nothing is queued, requests fail at once", async () => {
  const t = setup();
  assert.equal(t.socket.send(MessageId.ChatMsg, { msg: "before start" }), false);
  await assert.rejects(t.socket.request(MessageId.RoomList, { type: 0 }), (e: RsgameError) => e.code === NO_ANSWER);
});

test("stop and start while the credentials are awaited open one link, not two", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const t = setup({
    credentials: async () => {
      await gate;
      return { userId: 7, token: "t" };
    },
  });
  t.socket.start();
  await settle();
  t.socket.stop();
  t.socket.start();
  release();
  await settle();
  await settle();
  assert.equal(t.transport.links.length, 1);
});

test("our own Logout answered stops the socket, also when sent with send()", async () => {
  const t = setup();
  t.socket.start();
  const link = await online(t);
  t.socket.send(MessageId.Logout, { type: pb.LogoutType.LOGOUT_TYPE_QUIT });
  link.push(MessageId.LogoutResp, { type: pb.LogoutType.LOGOUT_TYPE_QUIT });
  assert.equal(t.socket.stopReason, "logout");
  link.drop();
  t.clock.advance(60_000);
  await settle();
  assert.equal(t.transport.links.length, 1);
});

test("a link that is never logged in is given up", async () => {
  const t = setup({ heartbeatMs: 60_000 });
  t.socket.start();
  await settle();
  const link = t.transport.last;
  link.on.open();
  t.clock.advance(15_001);
  assert.equal(link.closed?.code, 4005);
});

test("the server to try is chosen by failures in a row, without a cap", async () => {
  const asked: number[] = [];
  const t = setup({
    url: (failures) => {
      asked.push(failures);
      return "ws://game/ws";
    },
  });
  t.clock.rand = 0;
  t.socket.start();
  for (let i = 0; i < 20; i++) {
    await settle();
    t.transport.last.drop();
    t.clock.advance(t.clock.nextIn() ?? 0);
  }
  await settle();
  assert.deepEqual(asked.slice(0, 3), [0, 1, 2]);
  assert.equal(asked.at(-1), 20);
});

test("sessions ended by this player's own new login (a password change) log in again", async () => {
  let login = 1;
  const t = setup({
    credentials: async () => ({ userId: 7, token: `t${login}`, login }),
    renewedSince: (n) => n !== login,
  });
  t.socket.start();
  const link = await online(t);
  login = 2; // changePassword: new tokens, every older session ends
  link.push(MessageId.LogoutResp, { type: pb.LogoutType.LOGOUT_TYPE_ENDED });
  assert.equal(t.socket.stopReason, null);
  assert.equal(link.closed?.code, 4006);
  t.clock.advance(t.clock.nextIn() ?? 0);
  await settle();
  const again = t.transport.last;
  again.on.open();
  assert.equal(again.messages()[0].msg.token, "t2");
});
