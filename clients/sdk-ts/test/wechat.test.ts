import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../src/client.js";
import { MessageId } from "../src/gen/protocol.js";
import { Codec } from "../src/codec.js";
import { Socket } from "../src/socket.js";
import { wechatHttp, wechatStore, wechatTransport, type Wx, type WxSocketTask } from "../src/wechat.js";
import { FakeClock, settle } from "./fakes.js";

/** A fake `wx`: sockets the test drives, requests answered by `reply`, a storage map. */
function fakeWx(reply: (url: string, data?: string) => unknown) {
  const storage = new Map<string, unknown>();
  const tasks: Array<{ url: string; sent: Array<string | ArrayBuffer>; fire: Record<string, (x: any) => void> }> = [];
  const wx: Wx = {
    connectSocket({ url }) {
      const fire: Record<string, (x: any) => void> = {};
      const task = {
        url,
        sent: [] as Array<string | ArrayBuffer>,
        fire,
        onOpen: (cb: () => void) => (fire.open = cb),
        onMessage: (cb: (m: unknown) => void) => (fire.message = cb),
        onClose: (cb: (e: unknown) => void) => (fire.close = cb),
        onError: (cb: (e: unknown) => void) => (fire.error = cb),
        send: (o: { data: string | ArrayBuffer }) => void task.sent.push(o.data),
        close: (o: { code?: number; reason?: string }) => fire.close?.({ code: o.code ?? 1000, reason: o.reason ?? "" }),
      };
      tasks.push(task);
      return task as unknown as WxSocketTask;
    },
    request(o) {
      const data = reply(o.url, typeof o.data === "string" ? o.data : undefined);
      queueMicrotask(() => (data instanceof Error ? o.fail({ errMsg: data.message }) : o.success({ statusCode: 200, data })));
    },
    getStorageSync: (k) => storage.get(k) ?? "",
    setStorageSync: (k, v) => void storage.set(k, v),
    removeStorageSync: (k) => void storage.delete(k),
  };
  return { wx, tasks, storage };
}

test("the same socket logs in over wx.connectSocket, with ArrayBuffers both ways", async () => {
  const { wx, tasks } = fakeWx(() => null);
  const socket = new Socket({
    url: "wss://game.example.com/ws",
    transport: wechatTransport(wx),
    clock: new FakeClock(),
    credentials: async () => ({ userId: 3, token: "t" }),
  });
  socket.start();
  await settle();
  const task = tasks[0];
  assert.equal(task.url, "wss://game.example.com/ws");
  task.fire.open(undefined);
  assert.ok(task.sent[0] instanceof ArrayBuffer, "wx sends ArrayBuffers, not views");
  const [login] = new Codec("protobuf").decode(new Uint8Array(task.sent[0] as ArrayBuffer));
  assert.equal(login.id, MessageId.GameLogin);
  const frame = new Codec("protobuf").encode(MessageId.UserInfo, { userId: 3 }) as Uint8Array;
  task.fire.message({ data: frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength) });
  assert.equal(socket.status, "online");
  task.fire.error({ errMsg: "network down" });
  assert.equal(socket.status, "offline");
  socket.stop();
});

test("REST over wx.request, and the session in wx storage", async () => {
  const { wx, storage } = fakeWx((url) => {
    if (url.endsWith("/loginWechat"))
      return JSON.stringify({ code: 200, msg: "ok", data: { accessToken: "a", accessExpire: 2e9, refreshAfter: 2e9, refreshToken: "r", servers: ["wss://g/ws"] } });
    if (url.endsWith("/detail")) return { code: 200, msg: "ok", data: { userInfo: { id: 9 } } }; // wx may hand back parsed JSON
    return new Error("request:fail");
  });
  const c = new Client({ baseUrl: "https://api.example.com", http: wechatHttp(wx), store: wechatStore(wx) });
  const s = await c.loginWechat({ code: "from-wx-login" });
  assert.equal(s.userId, 9);
  assert.equal((storage.get("rsgame.session") as { userId: number }).userId, 9);
  assert.equal(c.gameUrl(), "wss://g/ws");
  await assert.rejects(c.api.game.getShop(), (e: Error & { code: number }) => e.code === 0);
  const again = new Client({ baseUrl: "https://api.example.com", http: wechatHttp(wx), store: wechatStore(wx) });
  assert.equal(again.session?.userId, 9, "a relaunch finds the session");
});
