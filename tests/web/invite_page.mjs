// The invitation landing page of xmppd in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core), driven by tests/integration/test_invites.py:
//   node invite_page.mjs register URL USERNAME PASSWORD   fill the form, create the account
//   node invite_page.mjs visit URL                        what the page says now
// Prints one JSON line per step; exits 0 when the steps ran, 1 otherwise.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [mode, url, username, password] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const profile = mkdtempSync(join(tmpdir(), "xmppd-chromium-"));
let context;
let code = 1;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`pageerror: ${e}\n`));
  const response = await page.goto(url);
  say({ event: "loaded", status: response.status(), title: await page.title(),
        text: (await page.textContent("body")).slice(0, 2000) });
  if (mode === "register") {
    say({ event: "invite", who: await page.textContent("#who"),
          open: await page.getAttribute("#open", "href"),
          apps: await page.$$eval(".apps a", (links) => links.map((a) => a.textContent)) });
    if (!(await page.getAttribute("#username", "readonly"))) {
      await page.fill("#username", username);
    }
    await page.fill("#password", password);
    await page.fill("#confirm", password + "-typo");
    await Promise.all([page.waitForNavigation(), page.click("#create")]);
    say({ event: "mistake", title: await page.title(), error: await page.textContent("#error") });
    await page.fill("#password", password);
    await page.fill("#confirm", password);
    const [answer] = await Promise.all([page.waitForNavigation(), page.click("#create")]);
    say({ event: "created", status: answer.status(), title: await page.title(),
          jid: await page.textContent("#jid") });
  }
  code = 0;
} catch (err) {
  say({ event: "error", error: String(err) });
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}
