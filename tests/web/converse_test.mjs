// Converse.js in headless Chromium (Debian's /usr/bin/chromium through playwright-core),
// driven by tests/integration/test_web_clients.py:
//   node converse_test.mjs PAGE_URL TRANSPORT SERVICE_URL JID PASSWORD PEER
// Logs in through Converse, sends "hello from converse" to PEER through Converse's chat model,
// waits for PEER's answer to arrive in the browser, and checks Converse's chat shows it.
// Prints one JSON line per step; exits 0 when all passed, 1 otherwise.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageUrl, transport, service, jid, password, peer] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const profile = mkdtempSync(join(tmpdir(), "xmppd-chromium-"));
let context;
let code = 1;
try {
  // A fresh profile directory each run (launchPersistentContext passes it as --user-data-dir).
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error" || process.env.XMPPD_WEB_DEBUG) process.stderr.write(`console: ${m.text()}\n`); });
  page.on("pageerror", (e) => process.stderr.write(`pageerror: ${e}\n`));
  const url = new URL(pageUrl);
  if (process.env.XMPPD_WEB_DEBUG) url.searchParams.set("loglevel", "debug");
  for (const [k, v] of Object.entries({ transport, service, jid, password })) url.searchParams.set(k, v);
  await page.goto(url.toString());
  const events = (pred) => page.waitForFunction(pred, null, { timeout: 30000, polling: 100 });
  await events(() => window.xmppdEvents.some((e) => e.event === "connected"));
  say({ event: "connected", jid: await page.evaluate(() => window.xmppdEvents.find((e) => e.event === "connected").jid) });
  await page.evaluate(async (peer) => {
    // Converse's own chat model: create the one-to-one chat and send through it.
    const chat = await window.xmppdApi.chats.get(peer, {}, true);
    await chat.sendMessage({ body: "hello from converse" });
  }, peer);
  say({ event: "sent" });
  await events(() => window.xmppdEvents.some((e) => e.event === "message"));
  const got = await page.evaluate(() => window.xmppdEvents.find((e) => e.event === "message"));
  say(got);
  // Converse's own chat model shows the answer (not only our raw handler).
  await page.waitForFunction(async ([peer, body]) => {
    const chat = await window.xmppdApi.chats.get(peer);
    return !!chat && chat.messages.models.some((m) => m.get("body") === body);
  }, [peer, got.body], { timeout: 15000, polling: 100 });
  say({ event: "shown", body: got.body });
  code = 0;
} catch (e) {
  say({ event: "error", error: String(e) });
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
