// What the browser tests of clients/web and clients/console share: numbered screenshots of
// each step, checks that log what held, waits on a page condition with a deadline (never a
// sleep), a run that ends by itself, and how Debian's Chromium is started. Plain Node, no
// dependency: each test brings its own playwright-core.
import fs from "node:fs";
import path from "node:path";

/** Chromium's flags for a headless run on a machine with no network but loopback. */
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/**
 * The steps of one run, logged as `[tag hh:mm:ss.mmm]`, screenshots in `shots`.
 * `describe(page)`, when given, says what the page holds when a wait times out.
 */
export function steps(tag, shots, { timeout = 20_000, describe = null } = {}) {
  fs.mkdirSync(shots, { recursive: true });
  const log = (...a) => console.log(`[${tag} ${new Date().toISOString().slice(11, 23)}]`, ...a);
  let n = 0;
  async function shot(page, name, options = {}) {
    n += 1;
    const file = path.join(shots, `${String(n).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, ...options });
    log("screenshot", file);
  }
  function check(cond, what) {
    if (!cond) throw new Error(`check failed: ${what}`);
    log("ok:", what);
  }
  async function until(page, what, fn, arg) {
    try {
      await page.waitForFunction(fn, arg, { timeout, polling: 100 });
    } catch {
      await shot(page, "failed");
      const state = describe ? await describe(page).catch((e) => String(e)) : "";
      throw new Error(`timed out: ${what}${state ? `\nclient state: ${state}` : ""}`);
    }
    log("ok:", what);
  }
  return { log, shot, check, until, timeout };
}

/** Ends the process after `ms` however a step hangs, closing `browser()` first. */
export function deadline(ms, browser) {
  setTimeout(() => {
    console.error(`E2E FAILED: over ${Math.round(ms / 60_000)} minutes`);
    Promise.race([browser()?.close(), new Promise((r) => setTimeout(r, 5000))]).finally(() => process.exit(1));
  }, ms).unref();
}

/** Closes the browser, then exits 1 naming every failure, or logs that all passed. */
export async function finish(browser, failures, log, passed) {
  await browser.close();
  if (failures.length) {
    console.error("E2E FAILED:\n" + failures.join("\n"));
    process.exit(1);
  }
  log(passed);
}
