// The console end to end in a real browser: a player plays the demo as a guest; an operator
// logs in to the console, sees the dashboard, finds that player (online), grants coins that the player's pack
// and live header show, removes its spam from world chat (gone from its screen) and mutes
// it (its next line is refused), bans the player and sees the game connection closed, reads both
// changes in the audit log, uploads a bad data file and sees its error (nothing changes),
// and posts a notice that getNotify serves. Screenshots of each page go to $E2E_SHOTS.
//
//   node e2e/e2e.mjs GAME_BASE_URL CONSOLE_BASE_URL
//
// Environment: OPERATOR and OPERATOR_PASSWORD (an admin or gm), CHROMIUM.
import { chromium } from "playwright-core";
import path from "node:path";
import { CHROMIUM_ARGS, deadline, finish, steps } from "../../e2e/steps.mjs";

const [game, consoleBase] = process.argv.slice(2);
if (!game || !consoleBase) {
  console.error("usage: node e2e/e2e.mjs GAME_BASE_URL CONSOLE_BASE_URL");
  process.exit(2);
}
const shots = process.env.E2E_SHOTS ?? path.resolve("target/console-e2e");
const { log, shot: shotOf, check, until, timeout: T } = steps("console-e2e", shots);
const shot = (page, name) => shotOf(page, name, { fullPage: true });
let browser = null;
deadline(180_000, () => browser);

browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
const failures = [];
try {
  // A player in the game: a guest, online.
  const pctx = await browser.newContext({ viewport: { width: 1100, height: 700 }, locale: "en-US" });
  const p = await pctx.newPage();
  p.on("pageerror", (e) => failures.push(`player page error: ${e.message}`));
  await p.goto(game + "/");
  await p.click("#guest");
  await until(p, "the player is online in the game", () => document.getElementById("status").classList.contains("online"), null);
  const me = await p.evaluate(() => ({ id: window.rsgame.world.me.id, name: window.rsgame.world.me.name }));
  log("player", me);

  // The operator logs in.
  const octx = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "en-US" });
  const c = await octx.newPage();
  c.on("pageerror", (e) => failures.push(`console page error: ${e.message}`));
  const csp = (await c.goto(consoleBase + "/")).headers()["content-security-policy"] ?? "";
  check(csp.includes("default-src 'self'") && !csp.includes("unsafe-inline"), `the console's CSP allows no inline script (${csp})`);
  await c.waitForSelector("#op-username", { timeout: T });
  await shot(c, "console-login");
  await c.fill("#op-username", process.env.OPERATOR);
  await c.fill("#op-password", "not the password");
  await c.click("#op-login");
  await until(c, "a wrong password is refused in words", () => /Wrong name, password or code/.test(document.querySelector(".error")?.textContent ?? ""), null);
  await c.fill("#op-password", process.env.OPERATOR_PASSWORD);
  await c.click("#op-login");
  // The dashboard first: this node's charts, and the guest's sign-up in the account log.
  await c.waitForSelector("#dashboard .chart svg", { timeout: T });
  await until(c, "the dashboard counts the new account", () => [...document.querySelectorAll("#dashboard h3")].some((h) => /New accounts/.test(h.textContent) && /[1-9]\d* this hour/.test(h.textContent)), null);
  await until(c, "the dashboard shows the database, cache and bus healthy", () => document.querySelectorAll("#dash-health .tag.good").length === 3, null);
  await shot(c, "console-dashboard");
  // The servers page: this node, taking players, with its scenes and the guest in one.
  await c.click("a[href='#servers']");
  await until(c, "the servers page lists this node with the player", () => [...document.querySelectorAll("#servers .node h3")].some((h) => /[1-9]\d* players/.test(h.textContent) && /taking players/.test(h.textContent)), null);
  await shot(c, "console-servers");
  await c.click("a[href='#players']");
  await c.waitForSelector("#player-q", { timeout: T });
  const cookies = await octx.cookies();
  const session = cookies.find((k) => k.name === "rsgame_console");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  check(!(await c.evaluate(() => document.cookie.includes("rsgame_console"))), "the page's script cannot read the session cookie");

  // Find the player: online, on this node.
  await c.fill("#player-q", me.name);
  await c.click("#player-find");
  await c.waitForSelector(`#player-results a[href="#player/${me.id}"]`, { timeout: T });
  check((await c.textContent("#player-results")).includes("local") || (await c.textContent("#player-results")).length > 0, "the player is listed");
  await until(c, "the search shows the player online", () => !!document.querySelector("#player-results .tag.good"), null);
  await shot(c, "console-players");
  await c.click(`#player-results a[href="#player/${me.id}"]`);
  await c.waitForSelector("#player-coins", { timeout: T });
  const coins0 = Number(await c.textContent("#player-coins"));
  await shot(c, "console-player");

  // Grant 77 coins: the console, the player's pack and its live header all show them.
  await c.fill("#act-reason", "compensation for the outage");
  await c.fill("#grant-coins", "77");
  await c.click("#act-grant");
  await until(c, "the grant is done", () => /grant: done/.test(document.getElementById("act-note").textContent), null);
  await until(c, "the console shows the new coins", (n) => Number(document.getElementById("player-coins").textContent) === n, coins0 + 77);
  const packCoins = await p.evaluate(async () => {
    const s = JSON.parse(sessionStorage.getItem("rsgame.session"));
    const r = await fetch("/game/v1/game/getPack", { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${s.accessToken}` }, body: "{}" });
    return (await r.json()).data.player.coins;
  });
  check(packCoins === coins0 + 77, `the player's getPack shows ${coins0} + 77 coins (${packCoins})`);
  await until(p, "the player's header shows them live", (n) => Number(document.getElementById("me-coins").textContent) === n, coins0 + 77);
  await shot(c, "console-granted");

  // Chat moderation: the player spams world chat; the operator finds the line, removes it
  // (gone from the player's screen) and mutes the player (its next line is refused).
  const spam = `cheap gold at example dot com ${Date.now() % 10000}`;
  await p.click("#chat-tabs button[data-chat='1']");
  await p.fill("#chat-text", spam);
  await p.click("#chat-form button[type=submit]");
  await until(p, "the player sees its own line", (t) => document.getElementById("chat-log").textContent.includes(t), spam);
  await c.click("a[href='#chat']");
  await c.waitForSelector("#chat-text", { timeout: T });
  await c.fill("#chat-text", "cheap gold");
  // The node writes its chat log in batches: filter again until the line is there.
  for (let tries = 0; !(await c.textContent("#chat-lines")).includes("cheap gold"); tries++) {
    if (tries > 60) throw new Error("timed out: the console finds the line");
    await new Promise((r) => setTimeout(r, 250));
    await c.click("#chat-filter");
  }
  log("ok: the console finds the line");
  await shot(c, "console-chat");
  await c.fill("#chat-reason", "advertising");
  await c.click("#chat-lines tbody tr:first-child button.remove");
  await until(c, "the removal is done", () => /remove: done/.test(document.getElementById("chat-note").textContent), null);
  await until(p, "the line left the player's screen", (t) => !document.getElementById("chat-log").textContent.includes(t), spam);
  await c.goto(consoleBase + "/#player/" + me.id);
  await c.waitForSelector("#act-mute", { timeout: T });
  await c.fill("#act-reason", "advertising, second time");
  await c.click("#act-mute");
  await c.waitForSelector("#player-muted", { timeout: T });
  await p.fill("#chat-text", "let me talk");
  await p.click("#chat-form button[type=submit]");
  await until(p, "the muted player is told", () => /muted/i.test(document.getElementById("toast").textContent), null);
  check(!(await p.textContent("#chat-log")).includes("let me talk"), "the muted line was not shown");

  // Ban: the player's game connection closes and its page goes back to the login form.
  await c.fill("#act-reason", "speed hack seen by three players");
  await c.click("#act-ban");
  await c.waitForSelector("#player-banned", { timeout: T });
  await until(p, "the banned player's game session ended", () => !document.getElementById("auth").hidden && /ended/.test(document.getElementById("auth-error").textContent), null);
  await shot(p, "player-banned");
  await shot(c, "console-banned");

  // Both changes in the audit log, with the reasons.
  await c.click("a[href='#audit']");
  await c.waitForSelector("#audit-lines tbody tr", { timeout: T });
  const audit = await c.textContent("#audit-lines");
  check(audit.includes("player.ban") && audit.includes("player.grant") && audit.includes("speed hack"), "the audit log holds the ban and the grant with their reasons");
  check(audit.includes("chat.remove") && audit.includes("player.mute"), "the audit log holds the removal and the mute");
  await shot(c, "console-audit");

  // A bad data file: the check names the file and entry, applying it changes nothing.
  await c.click("a[href='#data']");
  await c.waitForSelector("#data-content", { timeout: T });
  await until(c, "the shop file is shown", () => document.getElementById("data-content").value.includes("goods_id"), null);
  const shopText = await c.inputValue("#data-content");
  await c.fill("#data-content", shopText.replace(/goods_id: \d+/, "goods_id: 9999"));
  await c.click("#data-check");
  await until(c, "the bad file's error names the file and the goods", () => /shop\.yaml.*9999/.test(document.getElementById("data-error").textContent), null);
  await c.fill("#data-reason", "try a typo");
  await c.click("#data-apply");
  await until(c, "applying it is refused too", () => /shop\.yaml/.test(document.getElementById("data-error").textContent) && !document.getElementById("data-note").textContent, null);
  await shot(c, "console-data-error");
  const shopNow = await c.evaluate(async () => (await (await fetch("/console/v1/data/file?name=shop.yaml")).json()).data.content);
  check(shopNow === shopText, "the shop file is unchanged");

  // A notice, posted in the console, served by getNotify.
  await c.click("a[href='#notices']");
  await c.waitForSelector("#notice-add", { timeout: T });
  await c.click("#notice-add");
  await c.locator(".notice-title").last().fill("Double coins this weekend");
  await c.fill("#notice-reason", "weekend event");
  await c.click("#notice-save");
  await until(c, "the notices are saved", () => /saved/.test(document.getElementById("notice-note").textContent), null);
  await shot(c, "console-notices");
  const served = await p.evaluate(async () => JSON.stringify(await (await fetch("/game/v1/game/getNotify")).json()));
  check(served.includes("Double coins this weekend"), "getNotify serves the new notice");

  // The operators' list (admins) and the operator's own page, for the screenshots.
  await c.click("a[href='#operators']");
  await until(c, "the operators are listed", () => /e2e_admin/.test(document.getElementById("operators")?.textContent ?? ""), null);
  await shot(c, "console-operators");
  await c.click("#me-link");
  await c.waitForSelector("#me", { timeout: T });
  await shot(c, "console-me");
} catch (e) {
  failures.push(e.message);
}
await finish(browser, failures, log, `all console checks passed; screenshots in ${shots}`);
