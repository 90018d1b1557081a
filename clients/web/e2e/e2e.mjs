// End to end in a real browser: the bundle, the API description and the API's replies come
// compressed; two players register (answering the captcha) and log in, see each other move,
// chat privately by name, one kills a monster and sees its coins, experience bar and score
// on the leaderboard (by name, ranked) rise, one buys in the shop, claims an operator's gift
// from the inbox and levels up with a scroll, they become friends by name, both play a
// lockstep room they made and one the matchmaker made for them (Quick match), they form a
// party and a guild and chat in each, one kills the other in the PvP Arena and the dead one
// is told by whom, and a reload resumes the session; a forgotten password is reset by an email
// code, and a third browser, a phone with a touch screen in Chinese, plays as a guest with
// taps, the stick and the menu. Screenshots of each step go to $E2E_SHOTS (default
// target/web-e2e).
//
//   node e2e/e2e.mjs http://127.0.0.1:8888
//
// Environment: CHROMIUM (default /usr/bin/chromium); REDIS_URL and CACHE_PREFIX, where the
// server keeps captcha answers and verification codes (the test plays the human who reads
// the picture and the email); ADMIN_TOKEN, the server's game.admin_token, with which the
// test plays the operator who mails B a gift.
import { chromium } from "playwright-core";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { CHROMIUM_ARGS, deadline, finish, steps } from "../../e2e/steps.mjs";

const base = process.argv[2];
if (!base) {
  console.error("usage: node e2e/e2e.mjs BASE_URL");
  process.exit(2);
}
const shots = process.env.E2E_SHOTS ?? path.resolve("target/web-e2e");
const redisUrl = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const prefix = process.env.CACHE_PREFIX ?? "rsgame:";
// When a wait times out: where the player is and what it sees.
const describe = (page) =>
  page.evaluate(() => {
    const w = window.rsgame?.world;
    return w ? JSON.stringify({ me: w.me, entities: [...w.entities.values()], target: w.target, status: document.getElementById("status").textContent }) : "no client";
  });
const { log, shot, check, until, timeout: T } = steps("e2e", shots, { describe });
// However a step hangs, the run ends by itself (the browser with it).
let browser = null;
deadline(300_000, () => browser);

/** GET over RESP: the captcha's answer as the server stored it (a JSON string). A Redis
 * without a password and on database 0, as the test's is. */
function redisGet(key) {
  return redisCmd(["GET", key]);
}

/** One command over RESP; a bulk string's text, or null (nil, or an integer reply). */
function redisCmd(parts) {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(redisUrl.port || 6379), redisUrl.hostname);
    let buf = "";
    s.setTimeout(5000, () => s.destroy(new Error("redis timeout")));
    s.on("error", reject);
    s.on("data", (d) => {
      buf += d.toString("utf8");
      if (buf.startsWith("$-1\r\n") || /^:\d+\r\n/.test(buf)) {
        s.end();
        resolve(null);
      }
      const m = buf.match(/^\$(\d+)\r\n/);
      if (m && buf.length >= m[0].length + Number(m[1]) + 2) {
        s.end();
        resolve(buf.slice(m[0].length, m[0].length + Number(m[1])));
      } else if (buf.startsWith("-")) {
        s.end();
        reject(new Error(buf.trim()));
      }
    });
    s.write(`*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join("")}`);
  });
}

/** A raw GET (no decoding): the reply's content-encoding and its size on the wire. */
function rawGet(url, encoding) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { "Accept-Encoding": encoding } }, (res) => {
      let size = 0;
      res.on("data", (d) => (size += d.length));
      res.on("end", () => resolve({ encoding: res.headers["content-encoding"] ?? "identity", size }));
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
  });
}

async function register(page, name) {
  await page.goto(base + "/");
  await page.click("#tab-register");
  await page.fill("#username", name);
  await page.fill("#password", "secret-pass-99");
  await page.fill("#nickname", name);
  await page.click("#auth-submit");
  // The server asks for a captcha (usercenter.register_captcha): the picture appears.
  await page.waitForSelector("#captcha-row:not([hidden])", { timeout: T });
  await page.waitForFunction(() => !!document.getElementById("captcha-img").dataset.key, null, { timeout: T });
  const key = await page.$eval("#captcha-img", (i) => i.dataset.key);
  const raw = await redisGet(`${prefix}basic:captcha:${key}`);
  check(raw, `captcha ${key.slice(0, 8)}… has an answer in the cache`);
  await shot(page, `${name}-captcha`);
  await page.fill("#captcha-code", JSON.parse(raw));
  await page.click("#auth-submit");
  await page.waitForSelector("#game:not([hidden])", { timeout: T });
  await page.waitForFunction(() => document.getElementById("status").classList.contains("online"), null, { timeout: T });
  const id = await page.evaluate(() => window.rsgame.world.me.id);
  check(id > 0, `${name} registered, logged in and connected as user ${id}`);
  return id;
}

browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
const failures = [];
try {
  const ctxA = await browser.newContext({ viewport: { width: 1200, height: 760 }, locale: "en-US" });
  const ctxB = await browser.newContext({ viewport: { width: 1200, height: 760 }, locale: "en-US" });
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  for (const [p, n] of [[a, "A"], [b, "B"]]) {
    p.on("pageerror", (e) => failures.push(`${n} page error: ${e.message}`));
    p.on("console", (m) => m.type() === "error" && log(`${n} console:`, m.text()));
  }
  // What goes over the wire is compressed when the browser takes it: the bundle as brotli
  // or gzip (compressed once at start), the API's replies as gzip (compressed per reply).
  {
    const plain = await rawGet(base + "/app.js", "identity");
    const br = await rawGet(base + "/app.js", "br");
    const gz = await rawGet(base + "/app.js", "gzip");
    check(br.encoding === "br" && gz.encoding === "gzip", "the bundle is served as br and as gzip");
    check(br.size * 3 < plain.size && gz.size * 3 < plain.size, `app.js: ${plain.size} bytes, ${br.size} as br, ${gz.size} as gzip`);
    const api = await rawGet(base + "/openapi.json", "gzip, br");
    const apiPlain = await rawGet(base + "/openapi.json", "identity");
    check(api.encoding === "gzip" && api.size * 3 < apiPlain.size, `/openapi.json: ${apiPlain.size} bytes, ${api.size} as gzip`);
  }
  const suffix = Date.now().toString(36);
  const nameA = `ann_${suffix}`;
  const nameB = `bob_${suffix}`;
  const idA = await register(a, nameA);
  const idB = await register(b, nameB);
  await shot(a, "A-in-world");

  // Both start near the scene's respawn point, though not always in each other's view (the
  // view is the player's AOI cell and the eight around it): B walks over to A first.
  const posA = await a.evaluate(() => ({ x: window.rsgame.world.me.x, z: window.rsgame.world.me.z }));
  await b.evaluate((p) => window.rsgame.world.walkTo(p.x - 10, p.z), posA);
  await until(a, "A sees B", (id) => window.rsgame.world.entities.has(id), idB);
  await until(b, "B sees A", (id) => window.rsgame.world.entities.has(id), idA);
  await until(b, "B arrives beside A", (id) => {
    const w = window.rsgame.world;
    const e = w.entities.get(id);
    return e && Math.hypot(e.tx - w.me.x, e.tz - w.me.z) < 14;
  }, idA);
  // Each sees the other move: A walks with the keyboard, B with a click.
  const bSeesA0 = await b.evaluate((id) => window.rsgame.world.entities.get(id).tx, idA);
  await a.bringToFront();
  await a.keyboard.down("d");
  await a.waitForTimeout(400);
  await a.keyboard.up("d");
  await until(b, "B sees A move right", ([id, x0]) => window.rsgame.world.entities.get(id)?.tx > x0 + 6, [idA, bSeesA0]);
  await shot(b, "B-sees-A-move");
  const aSeesB0 = await a.evaluate((id) => window.rsgame.world.entities.get(id).tz, idB);
  // 14 units south of B, where the canvas draws that spot.
  const south = await b.evaluate(() => {
    const w = window.rsgame.world;
    const s = w.toScreen(w.me.x, w.me.z + 14);
    const c = document.getElementById("view");
    const r = c.getBoundingClientRect();
    return { x: r.left + (s.x * r.width) / c.width, y: r.top + (s.y * r.height) / c.height };
  });
  await b.mouse.click(south.x, south.y);
  await until(a, "A sees B move down", ([id, z0]) => window.rsgame.world.entities.get(id)?.tz > z0 + 6, [idB, aSeesB0]);
  await shot(a, "A-sees-B-move");

  // A private message from A that B reads.
  await a.click("#chat-tabs button[data-chat='3']");
  await a.fill("#chat-to", nameB); // by name: A has met B in the world
  const text = `hello ${nameB}, from ${nameA}`;
  await a.fill("#chat-text", text);
  await a.click("#chat-form button[type=submit]");
  await b.click("#chat-tabs button[data-chat='3']");
  await until(b, "B reads A's private message", (t) => document.getElementById("chat-log").textContent.includes(t), text);
  check((await b.textContent("#chat-log")).includes(`${nameA} → ${nameB}`), "the private line names both players");
  await shot(b, "B-reads-private-chat");

  // A kills a monster: walk towards the slimes, click one, wait for the reward, watch the bag.
  await Promise.all([a.waitForResponse((r) => r.url().endsWith("/getPack")), a.click("#panels button[data-panel='bag']")]);
  await a.waitForTimeout(100);
  const coins0 = Number(await a.textContent("#bag-coins"));
  // The sample world's Meadow: slimes at (250, 160) and (300, 240), a wolf at (350, 330).
  const seesMonster = () => a.evaluate(() => [...window.rsgame.world.entities.values()].some((e) => e.kind === 2 && !e.dead));
  for (const [x, z] of [[238, 160], [288, 240], [338, 330]]) {
    if (await seesMonster()) break;
    await a.evaluate(([x, z]) => window.rsgame.world.walkTo(x, z), [x, z]);
    for (let i = 0; i < 60 && !(await seesMonster()); i++) await a.waitForTimeout(100);
  }
  await until(a, "A sees a monster", () => [...window.rsgame.world.entities.values()].some((e) => e.kind === 2 && !e.dead), null);
  const deadline = Date.now() + 90_000;
  let coins = coins0;
  while (coins <= coins0 && Date.now() < deadline) {
    // Click the nearest live monster where it is drawn; the client walks into reach and strikes.
    const spot = await a.evaluate(() => {
      const w = window.rsgame.world;
      if (w.target !== null && w.entities.get(w.target) && !w.entities.get(w.target).dead) return null;
      let best = null;
      for (const e of w.entities.values()) {
        if (e.kind !== 2 || e.dead) continue;
        const d = Math.hypot(e.x - w.me.x, e.z - w.me.z);
        if (!best || d < best.d) best = { e, d };
      }
      if (!best) return null;
      const s = w.toScreen(best.e.x, best.e.z);
      const r = document.getElementById("view").getBoundingClientRect();
      const c = document.getElementById("view");
      return { x: r.left + (s.x * r.width) / c.width, y: r.top + (s.y * r.height) / c.height };
    });
    if (spot) await a.mouse.click(spot.x, spot.y);
    if (await a.evaluate(() => window.rsgame.world.me.dead)) await a.click("#respawn");
    await a.waitForTimeout(500);
    coins = Number(await a.textContent("#bag-coins"));
  }
  check(coins > coins0, `A killed a monster: coins in the bag ${coins0} → ${coins}`);
  await until(a, "A's experience bar filled a little", () => parseFloat(document.getElementById("exp-fill").style.width) > 0 && /EXP \d+ \/ \d+/.test(document.getElementById("exp-text").textContent), null);
  await shot(a, "A-killed-monster");
  // The kill scored (world.yaml: a monster's score): A is on the Score board, by name, ranked.
  await a.click("#panels button[data-panel='ranks']");
  await until(a, "the Score board lists A by name with a rank and a positive score", (n) => [...document.querySelectorAll("#rank-list li")].some((li) => li.textContent.includes(n) && /^\d+\./.test(li.querySelector(".rank")?.textContent ?? "") && Number(li.querySelector("b")?.textContent) > 0), nameA);
  await shot(a, "A-score-board");
  // Away from the monsters (a dead one respawns within seconds); come back if killed meanwhile.
  if (await a.evaluate(() => window.rsgame.world.me.dead)) {
    await a.click("#respawn");
    await until(a, "A respawned", () => !window.rsgame.world.me.dead, null);
  }
  await a.evaluate(() => window.rsgame.world.walkTo(190, 160));
  await b.evaluate(() => window.rsgame.world.walkTo(185, 160));
  await until(a, "A and B meet again", (id) => window.rsgame.world.entities.has(id), idB);

  // B buys in the shop: coins go down, the goods appear in the bag.
  await b.click("#panels button[data-panel='shop']");
  await b.waitForSelector("#shop-list button[data-listing='1']", { timeout: T });
  await Promise.all([b.waitForResponse((r) => r.url().endsWith("/getPack")), b.click("#panels button[data-panel='bag']")]);
  await b.waitForTimeout(100);
  const bCoins0 = Number(await b.textContent("#bag-coins"));
  check(bCoins0 >= 10, `B has ${bCoins0} coins to spend`);
  await b.click("#panels button[data-panel='shop']");
  check((await b.textContent("#shop-list")).includes("heals"), "the shop says what a potion does");
  const [bought] = await Promise.all([b.waitForResponse((r) => r.url().endsWith("/buyGoods")), b.click("#shop-list button[data-listing='1']")]);
  check((await bought.json()).code === 200, "B's purchase went through");
  await b.click("#panels button[data-panel='bag']");
  await until(b, "B's bag holds the goods and fewer coins", (c0) => Number(document.getElementById("bag-coins").textContent) < c0 && document.querySelectorAll("#bag-list li").length > 0, bCoins0);
  await shot(b, "B-bought");

  // An operator mails B a gift: the notice arrives while B plays, B opens the inbox and
  // claims it, and the coins show in the bag.
  const adminToken = process.env.ADMIN_TOKEN;
  if (!adminToken) throw new Error("ADMIN_TOKEN is not set");
  const sent = await fetch(`${base}/game/v1/inbox/send`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Admin-Token": adminToken },
    body: JSON.stringify({ userIds: [idB], title: "Welcome gift", body: "For trying rsgame.", coins: 15 }),
  }).then((r) => r.json());
  check(sent.code === 200, `the operator's mail was sent (${JSON.stringify(sent)})`);
  await until(b, "B's Mail tab shows an unread message", () => document.getElementById("mail-unread").textContent === "1" && !document.getElementById("mail-unread").hidden, null);
  const [pack] = await Promise.all([b.waitForResponse((r) => r.url().endsWith("/getPack")), b.click("#panels button[data-panel='bag']")]);
  const bCoins1 = (await pack.json()).data.player.coins;
  await b.click("#panels button[data-panel='mail']");
  await b.waitForSelector("#mail-list li button", { timeout: T });
  await shot(b, "B-mail");
  const [claimed] = await Promise.all([b.waitForResponse((r) => r.url().endsWith("/inbox/claim")), b.click("#mail-list li button")]);
  check((await claimed.json()).code === 200, "B claimed the gift");
  await b.click("#panels button[data-panel='bag']");
  await until(b, "B's bag holds the gift's coins", (c1) => Number(document.getElementById("bag-coins").textContent) === c1 + 15, bCoins1);

  // B buys a Scroll of Insight (120 exp) and reads it: level 2, and the page says so. A potion
  // is not spent at full health.
  await b.click("#panels button[data-panel='shop']");
  await Promise.all([b.waitForResponse((r) => r.url().endsWith("/buyGoods")), b.click("#shop-list button[data-listing='3']")]);
  await b.click("#panels button[data-panel='bag']");
  await b.waitForSelector("#bag-list li:has-text('Scroll of Insight') button", { timeout: T });
  let potionUsed = false;
  b.on("request", (r) => r.url().endsWith("/useGoods") && (potionUsed = true));
  await b.click("#bag-list li:has-text('Small Potion') button");
  await until(b, "a potion at full health is kept", () => /full health/.test(document.getElementById("toast").textContent), null);
  check(!potionUsed, "no useGoods call for a potion at full health");
  await b.click("#bag-list li:has-text('Scroll of Insight') button");
  await until(b, "B's level-up is shown", () => !document.getElementById("level-up").hidden && /Level 2/.test(document.getElementById("level-up").textContent), null);
  await shot(b, "B-level-up");
  await until(b, "B's header says level 2 and the bar starts the new level", () => document.getElementById("me-level").textContent === "2" && /EXP \d+ \/ 180/.test(document.getElementById("exp-text").textContent), null);

  // Friends by name: A asks, B asks back (which accepts), and each list names the other.
  await a.click("#panels button[data-panel='friends']");
  await a.fill("#friend-id", nameB);
  await a.click("#friend-form button[type=submit]");
  await b.click("#panels button[data-panel='friends']");
  await b.fill("#friend-id", nameA);
  await b.click("#friend-form button[type=submit]");
  await until(a, "A's friend list names B", (n) => document.getElementById("friend-list").textContent.includes(n), nameB);
  await until(b, "B's friend list names A", (n) => document.getElementById("friend-list").textContent.includes(n), nameA);
  check(!/#\d/.test(await a.textContent("#friend-list")), "no ids in the friend list");
  await shot(a, "A-friends");

  // A dropped connection comes back by itself, and the player is still there.
  await b.evaluate(() => window.rsgame.conn.drop());
  await until(b, "B's client noticed the drop", () => !document.getElementById("status").classList.contains("online"), null);
  await until(b, "B reconnected by itself", () => document.getElementById("status").classList.contains("online"), null);
  await until(a, "A still sees B after B's reconnect", (id) => window.rsgame.world.entities.has(id), idB);
  await until(b, "B sees A again after its reconnect", (id) => window.rsgame.world.entities.has(id), idA);

  // A lockstep room: A creates it, B enters from the room list, both steer their squares, and
  // both screens hold the same state at the same frame.
  await a.click("#panels button[data-panel='rooms']");
  await a.fill("#room-name", "squares");
  await a.selectOption("#room-type", "3");
  await a.click("#room-form button[type=submit]");
  await until(a, "A is in the lockstep room", () => !document.getElementById("lockstep-box").hidden, null);
  await until(a, "A's square shows before any key is pressed", () => window.rsgame.lockstep.squares.size === 1, null);
  const roomId = await a.evaluate(() => window.rsgame.lockstep.roomId);
  await b.click("#panels button[data-panel='rooms']");
  await b.click("#rooms-refresh");
  await b.waitForSelector(`#room-list li:has-text("(${roomId})") button`, { timeout: T });
  await b.click(`#room-list li:has-text("(${roomId})") button`);
  await until(b, "B is in the lockstep room", (id) => window.rsgame.lockstep.roomId === id, roomId);
  await a.bringToFront();
  await a.evaluate(() => window.rsgame.lockstep.press("arrowright", 1500));
  await b.evaluate(() => window.rsgame.lockstep.press("arrowdown", 1500));
  await until(a, "A's screen shows both squares", () => window.rsgame.lockstep.squares.size === 2, null);
  await until(b, "B's screen shows both squares", () => window.rsgame.lockstep.squares.size === 2, null);
  await a.waitForTimeout(1500);
  const ha = await a.evaluate(() => [...window.rsgame.lockstep.history.entries()]);
  const hb = new Map(await b.evaluate(() => [...window.rsgame.lockstep.history.entries()]));
  const common = ha.filter(([n]) => hb.has(n));
  check(common.length > 10, `both screens stepped the same ${common.length} frames`);
  check(common.every(([n, d]) => hb.get(n) === d), "every one of those frames shows the same squares on both screens");
  await shot(a, "A-lockstep");
  // B reloads inside the room: the page finds out where it is, replays the kept frames and
  // shows the same squares as A again.
  await b.reload();
  await until(b, "B's reloaded page is back in the lockstep room", (id) => !document.getElementById("lockstep-box").hidden && window.rsgame.lockstep.roomId === id && window.rsgame.lockstep.squares.size === 2, roomId);
  await a.waitForTimeout(500);
  const ha2 = await a.evaluate(() => [...window.rsgame.lockstep.history.entries()]);
  const hb2 = new Map(await b.evaluate(() => [...window.rsgame.lockstep.history.entries()]));
  const common2 = ha2.filter(([n]) => hb2.has(n));
  check(common2.length > 10 && common2.every(([n, d]) => hb2.get(n) === d), `after the reload both screens agree on ${common2.length} frames`);
  await shot(b, "B-lockstep-after-reload");
  for (const [p, n] of [[b, "B"], [a, "A"]]) {
    await p.click("#panels button[data-panel='rooms']");
    await p.click("#room-quit");
    await until(p, `${n} is back in the world`, () => !document.getElementById("view").hidden, null);
    if (p === b) await until(a, "B's square leaves A's screen with B", () => window.rsgame.lockstep.squares.size === 1, null);
  }

  // Quick match: both ask the server for a game; the matchmaker puts them in one new lockstep
  // room (a match's room, not listed), and both play in it.
  for (const p of [a, b]) {
    await p.click("#panels button[data-panel='rooms']");
    await p.click("#quick-match");
  }
  await until(a, "A is in a match's lockstep room", () => !document.getElementById("lockstep-box").hidden && window.rsgame.lockstep.roomId >= 1e9, null);
  const matchRoom = await a.evaluate(() => window.rsgame.lockstep.roomId);
  await until(b, "B is in the same match's room", (id) => !document.getElementById("lockstep-box").hidden && window.rsgame.lockstep.roomId === id, matchRoom);
  await a.evaluate(() => window.rsgame.lockstep.press("arrowleft", 800));
  await b.evaluate(() => window.rsgame.lockstep.press("arrowup", 800));
  await until(b, "B's screen shows both squares of the match", () => window.rsgame.lockstep.squares.size === 2, null);
  check((await a.textContent("#match-status")).startsWith("matched with"), "A is told whom it was matched with");
  await shot(a, "A-quick-match");
  for (const [p, n] of [[a, "A"], [b, "B"]]) {
    await p.click("#room-quit");
    await until(p, `${n} is back in the world after the match`, () => !document.getElementById("view").hidden, null);
  }

  // A party: A creates one and invites B by id; B's invitation fills in the party to join;
  // party chat reaches B; B leaves and A is alone again, then A closes it.
  await a.click("#panels button[data-panel='party']");
  await a.click("#party-create");
  await until(a, "A leads a party", () => !document.getElementById("party-box").hidden, null);
  await a.fill("#party-invite-id", String(idB));
  await a.click("#party-invite-form button[type=submit]");
  await b.click("#panels button[data-panel='party']");
  await until(b, "B's invitation fills in the party id", () => document.getElementById("party-join-id").value !== "", null);
  await b.click("#party-join-form button[type=submit]");
  await until(a, "A's party lists two members", () => document.querySelectorAll("#party-list li").length === 2, null);
  await until(b, "B's party lists two members", () => document.querySelectorAll("#party-list li").length === 2, null);
  await a.click("#panels button[data-panel='chat']");
  await a.click("#chat-tabs button[data-chat='4']");
  await a.fill("#chat-text", "party time");
  await a.click("#chat-form button[type=submit]");
  await b.click("#panels button[data-panel='chat']");
  await b.click("#chat-tabs button[data-chat='4']");
  await until(b, "B reads A's party chat", () => document.getElementById("chat-log").textContent.includes("party time"), null);
  await shot(b, "B-party-chat");
  await b.click("#panels button[data-panel='party']");
  await b.click("#party-leave");
  await until(b, "B is out of the party", () => !document.getElementById("party-none").hidden, null);
  await a.click("#panels button[data-panel='party']");
  await until(a, "A's party is down to one", () => document.querySelectorAll("#party-list li").length === 1, null);
  await a.click("#party-leave");
  await until(a, "A's party is closed", () => !document.getElementById("party-none").hidden, null);

  // A guild: A founds a closed one (paying coins); B asks to join and A accepts; guild chat
  // reaches B; B leaves, then A, which closes it.
  await a.click("#panels button[data-panel='guild']");
  await a.fill("#guild-name", `Guild ${nameA}`.slice(0, 20));
  await a.uncheck("#guild-open");
  await a.click("#guild-create-form button[type=submit]");
  await until(a, "A leads a guild", () => !document.getElementById("guild-box").hidden && document.getElementById("guild-role").textContent === "leader", null);
  const guildName = await a.textContent("#guild-title");
  await b.click("#panels button[data-panel='guild']");
  await b.fill("#guild-search", guildName);
  await b.click("#guild-search-form button[type=submit]");
  await b.waitForSelector("#guild-found li button", { timeout: T });
  await b.click("#guild-found li button");
  await until(a, "A sees B's request (pushed, then listed)", () => document.querySelectorAll("#guild-requests li").length === 1, null);
  await a.click("#guild-requests li button");
  await until(b, "B is a member", () => !document.getElementById("guild-box").hidden, null);
  await until(a, "A's guild lists two members", () => document.querySelectorAll("#guild-members li").length === 2, null);
  check((await a.textContent("#guild-members")).includes(nameB), "A's guild names B, not an id");
  check((await a.textContent("#guild-members")).includes("●"), "online members are marked");
  await a.click("#panels button[data-panel='chat']");
  await a.click("#chat-tabs button[data-chat='5']");
  await a.fill("#chat-text", "guild meeting");
  await a.click("#chat-form button[type=submit]");
  await b.click("#panels button[data-panel='chat']");
  await b.click("#chat-tabs button[data-chat='5']");
  await until(b, "B reads the guild chat", () => document.getElementById("chat-log").textContent.includes("guild meeting"), null);
  await shot(b, "B-guild-chat");
  await b.click("#panels button[data-panel='guild']");
  await b.click("#guild-leave");
  await until(b, "B left the guild", () => !document.getElementById("guild-none").hidden, null);
  await a.click("#panels button[data-panel='guild']");
  await until(a, "A's guild is down to one", () => document.querySelectorAll("#guild-members li").length === 1, null);
  await a.click("#guild-leave");
  await until(a, "A's guild is closed", () => !document.getElementById("guild-none").hidden, null);

  // The scene says where players may fight: the Arena shows the PvP marker, the Meadow not.
  await a.click("#panels button[data-panel='rooms']");
  await a.click("#rooms-refresh");
  await a.waitForSelector(`#room-list li:has-text("(1002)") button`, { timeout: T });
  await a.click(`#room-list li:has-text("(1002)") button`);
  await until(a, "the Arena shows the PvP marker", () => !document.getElementById("pvp").hidden && window.rsgame.world.pvp, null);
  await shot(a, "A-arena-pvp");
  check(/attack/.test(await a.textContent("#hint")) && !/chat/.test(await a.textContent("#hint")), "the Arena's hint says a tap on a player attacks");
  // B follows and fights A until A falls: A is told who killed it.
  await b.click("#panels button[data-panel='rooms']");
  await b.click("#rooms-refresh");
  await b.waitForSelector(`#room-list li:has-text("(1002)") button`, { timeout: T });
  await b.click(`#room-list li:has-text("(1002)") button`);
  await until(b, "B is in the Arena", () => window.rsgame.world.pvp, null);
  await until(b, "B sees A in the Arena", (id) => window.rsgame.world.entities.has(id), idA);
  const fightEnds = Date.now() + 60_000;
  while (!(await a.evaluate(() => window.rsgame.world.me.dead)) && Date.now() < fightEnds) {
    await b.evaluate((id) => window.rsgame.world.target === null && window.rsgame.world.attack(id), idA);
    await b.waitForTimeout(300);
  }
  await until(a, "A is told B killed it", (n) => !document.getElementById("dead").hidden && document.getElementById("dead-text").textContent.includes(n), nameB);
  await shot(a, "A-killed-by-B");
  await a.click("#respawn");
  await until(a, "A respawned", () => !window.rsgame.world.me.dead, null);
  await b.click(`#room-list li:has-text("(1000)") button`);
  await a.click(`#room-list li:has-text("(1000)") button`);
  await until(a, "the Meadow shows none", () => document.getElementById("pvp").hidden && !window.rsgame.world.pvp, null);

  // A reload resumes A's session: same account, back online, where it stood.
  const before = await a.evaluate(() => ({ x: window.rsgame.world.me.x, z: window.rsgame.world.me.z }));
  await a.reload();
  await until(a, "A is online again after a reload", () => document.getElementById("status").classList.contains("online"), null);
  const after = await a.evaluate(() => ({ id: window.rsgame.world.me.id, x: window.rsgame.world.me.x, z: window.rsgame.world.me.z }));
  check(after.id === idA, "the reload kept A's account without a new login");
  check(Math.hypot(after.x - before.x, after.z - before.z) < 20, `A resumed where it stood (${before.x.toFixed(1)},${before.z.toFixed(1)} → ${after.x.toFixed(1)},${after.z.toFixed(1)})`);
  check(await a.isHidden("#auth"), "no login form after the reload");
  await until(b, "B still sees A after A's reload", (id) => window.rsgame.world.entities.has(id), idA);
  await shot(a, "A-after-reload");

  // Tokens revoked elsewhere (B logs out over REST, as another device would): B's next page
  // load is refused at the game login, fails to refresh, and lands on the login form.
  await b.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem("rsgame.session"));
    await fetch("/usercenter/v1/user/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${s.accessToken}` },
      body: JSON.stringify({ refreshToken: s.refreshToken }),
    });
  });
  await b.reload();
  await until(b, "B's revoked session ends at the login form", () => !document.getElementById("auth").hidden && /log in again/.test(document.getElementById("auth-error").textContent), null);
  await shot(b, "B-revoked");

  // Forgot password: A binds an email (over REST, as its settings page would), then, on B's
  // browser at the login form, resets A's password by a code sent there. A's own page is
  // logged out (every session of the account ends) and B's browser plays as A.
  const email = `ann.${suffix}@example.com`;
  const bindKey = await a.evaluate(async (to) => {
    const post = async (p, body, token) => (await fetch(p, { method: "POST", headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) })).json();
    const c = await post("/basic/v1/basic/captcha", {});
    window.__captcha = c.data.key;
    return c.data.key;
  }, email);
  const bindAnswer = JSON.parse(await redisGet(`${prefix}basic:captcha:${bindKey}`));
  const codeKey = await a.evaluate(async ([to, answer]) => {
    const r = await fetch("/basic/v1/basic/sendCode", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sendType: 2, phone: to, verilyType: 1, key: window.__captcha, code: answer }) });
    return (await r.json()).data.key;
  }, [email, bindAnswer]);
  const bindCode = JSON.parse(await redisGet(`${prefix}basic:code:${codeKey}`)).code;
  const bound = await a.evaluate(async ([to, key, code]) => {
    const s = JSON.parse(sessionStorage.getItem("rsgame.session"));
    const r = await fetch("/usercenter/v1/user/bind", { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${s.accessToken}` }, body: JSON.stringify({ kind: "email", target: to, code, key }) });
    return (await r.json()).code;
  }, [email, codeKey, bindCode]);
  check(bound === 200, `A bound ${email}`);
  // A minute later, as far as basic's one-code-a-minute per address is concerned.
  await redisCmd(["DEL", `${prefix}basic:code:to:${email}`]);
  await b.click("#forgot");
  await b.waitForSelector("#reset-form:not([hidden])", { timeout: T });
  await b.waitForFunction(() => !!document.getElementById("reset-captcha-img").dataset.key, null, { timeout: T });
  await b.fill("#reset-target", email);
  const resetCaptcha = await b.$eval("#reset-captcha-img", (i) => i.dataset.key);
  await b.fill("#reset-captcha", JSON.parse(await redisGet(`${prefix}basic:captcha:${resetCaptcha}`)));
  await b.click("#reset-send");
  await b.waitForFunction(() => !!document.getElementById("reset-form").dataset.key, null, { timeout: T });
  const resetKey = await b.$eval("#reset-form", (f) => f.dataset.key);
  const resetCode = JSON.parse(await redisGet(`${prefix}basic:code:${resetKey}`)).code;
  await b.fill("#reset-code", resetCode);
  await b.fill("#reset-password", "a-new-pass-2027");
  await shot(b, "B-reset-form");
  await b.click("#reset-submit");
  await until(b, "the reset logged B's browser in as A", (id) => document.getElementById("status").classList.contains("online") && window.rsgame.world.me.id === id, idA);
  await until(a, "A's old session was ended by the reset", () => !document.getElementById("auth").hidden, null);
  await shot(b, "B-plays-as-A-after-reset");

  // Play as guest on a phone: a 390-px touch screen whose browser speaks Chinese gets the page
  // in Chinese, a guest account at one tap, the world across the whole screen with a stick and
  // an attack button, and the panels behind the Menu button; and the same account again after
  // logging out (the device id stays in this browser).
  const ctxC = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, locale: "zh-CN" });
  const c = await ctxC.newPage();
  c.on("pageerror", (e) => failures.push(`C page error: ${e.message}`));
  await c.goto(base + "/");
  check((await c.textContent("#guest")) === "游客试玩", "a Chinese browser gets the page in Chinese");
  await c.tap("#guest");
  await until(c, "a guest plays at one tap", () => document.getElementById("status").classList.contains("online"), null);
  await until(c, "the scene told the phone how far it sees", () => window.rsgame.world.viewDistance > 0, null);
  const guestId = await c.evaluate(() => window.rsgame.world.me.id);
  const guestName = await c.textContent("#me-name");
  check(guestId > 0 && /Guest-/.test(guestName), `the guest is user ${guestId} (${guestName})`);
  const layout = await c.evaluate(() => {
    const r = (id) => document.getElementById(id).getBoundingClientRect();
    return { view: r("view").width, logout: r("logout").right, stick: r("stick").width, attack: r("attack-btn").width, side: getComputedStyle(document.getElementById("side")).display };
  });
  check(layout.view >= 380, `the world spans the phone's width (${layout.view} px)`);
  check(layout.logout <= 390, `"Log out" is on screen (right edge at ${layout.logout} px)`);
  check(layout.stick > 0 && layout.attack > 0, "the stick and the attack button are shown");
  check(layout.side === "none", "the panels wait behind the Menu button");
  await shot(c, "C-phone-guest");
  // A tap moves: 14 units east (or west, if someone stands there) of the player, where the
  // canvas draws that spot.
  const x0 = await c.evaluate(() => window.rsgame.world.me.x);
  const east = await c.evaluate(() => {
    const w = window.rsgame.world;
    const free = (x) => [...w.entities.values()].every((e) => Math.hypot(e.x - x, e.z - w.me.z) > 15);
    const s = w.toScreen(free(w.me.x + 14) ? w.me.x + 14 : w.me.x - 14, w.me.z);
    const cv = document.getElementById("view");
    const r = cv.getBoundingClientRect();
    return { x: r.left + (s.x * r.width) / cv.width, y: r.top + (s.y * r.height) / cv.height };
  });
  await c.touchscreen.tap(east.x, east.y);
  await until(c, "a tap walks the player", (x) => Math.abs(window.rsgame.world.me.x - x) > 8, x0);
  // The stick: a finger held up from its centre walks the player north until it lets go.
  const z0 = await c.evaluate(() => window.rsgame.world.me.z);
  const stick = await c.locator("#stick").boundingBox();
  const cdp = await ctxC.newCDPSession(c);
  const cx = stick.x + stick.width / 2;
  const cy = stick.y + stick.height / 2;
  await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [{ x: cx, y: cy }] });
  await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: [{ x: cx, y: cy - stick.height / 2 }] });
  await until(c, "the stick walks the player north", (z) => window.rsgame.world.me.z < z - 8, z0);
  await shot(c, "C-phone-stick");
  await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
  await until(c, "letting go of the stick stops the player", () => window.rsgame.world.stick === null, null);
  // The Menu opens the panels as a sheet; the Shop is in Chinese too.
  await c.tap("#menu");
  await until(c, "the Menu opens the panels", () => getComputedStyle(document.getElementById("side")).display !== "none", null);
  await c.tap("#panels button[data-panel='shop']");
  await c.waitForSelector("#shop-list button[data-listing='1']", { timeout: T });
  check((await c.textContent("#shop-list button[data-listing='1']")) === "购买", "the shop's buttons are in Chinese");
  // An error in words, in the player's language: a private line to a name nobody here knows.
  await c.tap("#panels button[data-panel='chat']");
  await c.tap("#chat-tabs button[data-chat='3']");
  await c.fill("#chat-to", "nobody_at_all");
  await c.fill("#chat-text", "hi");
  await c.tap("#chat-form button[type=submit]");
  await until(c, "the unknown name is explained in Chinese", () => /这里还不认识/.test(document.getElementById("toast").textContent), null);
  await shot(c, "C-phone-menu-zh");
  // Switched to English, it stays so.
  await c.tap("header .langs button[data-lang='en']");
  check((await c.textContent("#logout")) === "Log out", "the language switch turns the page English");
  await c.tap("#logout");
  await c.waitForSelector("#auth:not([hidden])", { timeout: T });
  check((await c.inputValue("#password")) === "" && (await c.textContent("#auth-submit")) === "Log in", "logging out leaves a clean login form, in the chosen language");
  await c.tap("#guest");
  await until(c, "the guest plays again", () => document.getElementById("status").classList.contains("online"), null);
  check((await c.evaluate(() => window.rsgame.world.me.id)) === guestId, "the same guest account after logging out");
} catch (e) {
  failures.push(e.message);
}
await finish(browser, failures, log, `all browser checks passed; screenshots in ${shots}`);
