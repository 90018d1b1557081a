import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../src/client.js";
import { Code } from "../src/gen/rest.js";
import { NO_ANSWER, RsgameError } from "../src/errors.js";
import type { HttpRequest } from "../src/http.js";
import { memoryStore, type Session } from "../src/session.js";

const now = () => Math.floor(Date.now() / 1000);
const tokens = (n: number, due = false) => ({
  accessToken: `a${n}`,
  accessExpire: now() + 3600,
  refreshAfter: due ? now() - 1 : now() + 1800,
  refreshToken: `r${n}`,
  servers: ["/ws"],
});
const ok = (data: unknown) => ({ status: 200, text: JSON.stringify({ code: 200, msg: "ok", data }) });
const fail = (code: number, msg = "") => ({ status: 200, text: JSON.stringify({ code, msg }) });

function server(handle: (req: HttpRequest, body: any) => { status: number; text: string } | Promise<{ status: number; text: string }>) {
  const seen: string[] = [];
  const http = async (req: HttpRequest) => {
    seen.push(`${req.url.replace("http://h", "")} ${req.headers.Authorization ?? "-"}`);
    return handle(req, typeof req.body === "string" ? JSON.parse(req.body) : null);
  };
  return { http, seen };
}

test("a login keeps the session with the player's id; replies are typed data", async () => {
  const s = server((req) => {
    if (req.url.endsWith("/login")) return ok(tokens(1));
    if (req.url.endsWith("/detail")) return ok({ userInfo: { id: 42 }, identities: [] });
    if (req.url.endsWith("/getPack")) return ok({ items: [], totalAttack: 3 });
    return fail(400505);
  });
  const saved: Array<Session | null> = [];
  const c = new Client({ baseUrl: "http://h", http: s.http, onSession: (x) => saved.push(x) });
  const session = await c.login({ username: "ann", password: "secret-99" });
  assert.equal(session.userId, 42);
  assert.equal((await c.api.game.getPack()).totalAttack, 3);
  assert.deepEqual(s.seen, ["/usercenter/v1/user/login -", "/usercenter/v1/user/detail Bearer a1", "/game/v1/game/getPack Bearer a1"]);
  assert.equal(saved.length, 1);
  assert.equal(c.gameUrl(), "ws://h/ws");
});

test("the envelope's code becomes an RsgameError; no answer is code 0", async () => {
  const c = new Client({ baseUrl: "http://h", http: server(() => fail(400507, "wrong")).http });
  await assert.rejects(c.api.user.login({ username: "a", password: "b" }), (e: RsgameError) => e.code === Code.LoginFailed && e.message === "wrong");
  const down = new Client({ baseUrl: "http://h", http: async () => { throw new Error("ECONNREFUSED"); } });
  await assert.rejects(down.api.basic.captcha(), (e: RsgameError) => e.code === NO_ANSWER);
  const proxy = new Client({ baseUrl: "http://h", http: async () => ({ status: 502, text: "<html>bad gateway" }) });
  await assert.rejects(proxy.api.basic.captcha(), (e: RsgameError) => e.code === NO_ANSWER && /502/.test(e.message));
});

test("one refresh at a time: concurrent calls share it, and the rotated token is kept", async () => {
  let refreshes = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const s = server(async (req, body) => {
    if (req.url.endsWith("/refresh")) {
      refreshes += 1;
      assert.equal(body.refreshToken, "r1");
      await gate;
      return ok(tokens(2));
    }
    return ok({ items: [] });
  });
  const store = memoryStore({ ...tokens(1, true), userId: 5 });
  const c = new Client({ baseUrl: "http://h", http: s.http, store });
  const calls = [c.api.game.getPack(), c.api.game.getPack(), c.freshSession()];
  release();
  await Promise.all(calls);
  assert.equal(refreshes, 1);
  assert.equal(store.load()?.refreshToken, "r2");
  assert.deepEqual(s.seen.filter((x) => x.includes("getPack")), ["/game/v1/game/getPack Bearer a2", "/game/v1/game/getPack Bearer a2"]);
});

test("a refused refresh ends the session; a failed one keeps it", async () => {
  const refused = new Client({
    baseUrl: "http://h",
    http: server(() => fail(Code.TokenExpired)).http,
    store: memoryStore({ ...tokens(1, true), userId: 5 }),
  });
  assert.equal(await refused.freshSession(), null);
  assert.equal(refused.session, null);
  const flaky = new Client({
    baseUrl: "http://h",
    http: async () => { throw new Error("offline"); },
    store: memoryStore({ ...tokens(1, true), userId: 5 }),
  });
  await assert.rejects(flaky.freshSession(), (e: RsgameError) => e.code === NO_ANSWER);
  assert.equal(flaky.session?.refreshToken, "r1");
});

test("a token the server refuses is refreshed once and the call retried", async () => {
  const s = server((req) => {
    if (req.url.endsWith("/refresh")) return ok(tokens(2));
    return req.headers.Authorization === "Bearer a1" ? fail(Code.TokenExpired) : ok({ items: [] });
  });
  const c = new Client({ baseUrl: "http://h", http: s.http, store: memoryStore({ ...tokens(1), userId: 5 }) });
  await c.api.game.getPack();
  assert.deepEqual(s.seen, ["/game/v1/game/getPack Bearer a1", "/usercenter/v1/user/refresh -", "/game/v1/game/getPack Bearer a2"]);
});

test("a logout during a refresh is not undone by it", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const c = new Client({
    baseUrl: "http://h",
    http: async (req) => {
      if (req.url.endsWith("/refresh")) {
        await gate;
        return ok(tokens(2));
      }
      return ok(null);
    },
    store: memoryStore({ ...tokens(1, true), userId: 5 }),
  });
  const refreshing = c.freshSession();
  const out = c.logoutAll();
  release();
  await Promise.all([refreshing, out]);
  assert.equal(c.session, null);
});

test("a refresh of the old session that lands after a new login leaves the new one alone", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const c = new Client({
    baseUrl: "http://h",
    http: async (req) => {
      if (req.url.endsWith("/refresh")) {
        await gate;
        return ok(tokens(2));
      }
      if (req.url.endsWith("/login")) return ok(tokens(3));
      if (req.url.endsWith("/detail")) return ok({ userInfo: { id: 99 } });
      return ok(null);
    },
    store: memoryStore({ ...tokens(1, true), userId: 5 }),
  });
  const old = c.freshSession();
  await c.login({ username: "someone-else", password: "x-password" });
  release();
  await old;
  assert.equal(c.session?.userId, 99);
  assert.equal(c.session?.refreshToken, "r3");
});

test("a refresh refused for a ban ends the session and says why", async () => {
  const c = new Client({
    baseUrl: "http://h",
    http: async () => fail(Code.AccountBanned, "banned until 2027-01-01: cheating"),
    store: memoryStore({ ...tokens(1, true), userId: 5 }),
  });
  assert.equal(await c.freshSession(), null);
  assert.equal(c.session, null);
  assert.equal(c.endedBy?.code, Code.AccountBanned);
  assert.match(c.endedBy?.message ?? "", /cheating/);
});

test("storage that throws does not turn a login into a failure", async () => {
  const c = new Client({
    baseUrl: "http://h",
    http: async (req) => (req.url.endsWith("/detail") ? ok({ userInfo: { id: 1 } }) : ok(tokens(1))),
    onSession: () => {
      throw new Error("quota exceeded");
    },
  });
  const s = await c.login({ username: "ann", password: "secret-99" });
  assert.equal(s.userId, 1);
  assert.equal(c.session?.userId, 1);
});

test("public game routes carry the token when there is one", async () => {
  const s = server(() => ok({ list: [] }));
  const c = new Client({ baseUrl: "http://h", http: s.http, store: memoryStore({ ...tokens(1), userId: 5 }) });
  await c.api.game.getRank();
  await new Client({ baseUrl: "http://h", http: s.http }).api.game.getRank();
  assert.deepEqual(s.seen, ["/game/v1/game/getRank Bearer a1", "/game/v1/game/getRank -"]);
});

test("the socket's credentials name the login they come from", async () => {
  const c = new Client({
    baseUrl: "http://h",
    http: async (req) => (req.url.endsWith("/detail") ? ok({ userInfo: { id: 1 } }) : ok(tokens(1))),
    store: memoryStore({ ...tokens(1), userId: 1 }),
  });
  const socket = c.socket() as unknown as { o: { credentials(r: boolean): Promise<{ login: number }>; renewedSince(n: number): boolean } };
  const first = await socket.o.credentials(false);
  assert.equal(socket.o.renewedSince(first.login), false);
  await c.changePassword({ old: "secret-99", new: "secret-100" });
  assert.equal(socket.o.renewedSince(first.login), true);
});
