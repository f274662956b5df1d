// The metrics listener's dashboard page in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core), driven by tests/integration/test_dashboard.py:
//   node dashboard_test.mjs PAGE_URL SCREENSHOT.png SCRAPES
// Opens the page, waits for SCRAPES scrapes, then prints one JSON line: the page errors, every
// panel's title and legend values, and the dashboard's own evaluation of a few queries; saves
// a screenshot of the whole page. Exits 0 when the page loaded and scraped, 1 otherwise.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageUrl, shot, scrapes] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "xmppd-chromium-"));
const errors = [];
let context;
let code = 1;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1600, height: 1000 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(pageUrl);
  await page.waitForFunction((n) => (window.xmppdScrapes || 0) >= n, Number(scrapes),
                             { timeout: 60000, polling: 100 });
  const panels = await page.evaluate(() => [...document.querySelectorAll(".panel")].map((p) => ({
    title: p.querySelector("h2").textContent,
    queries: p.querySelector("code").title.split("\n"),
    series: Object.fromEntries([...p.querySelectorAll(".legend [data-series]")].map(
      (s) => [s.dataset.series, Number(s.dataset.value)])),
  })));
  const evaluated = await page.evaluate(() => ({
    sessions: window.xmppdEvaluate("sum(xmppd_sessions)"),
    delivered: window.xmppdEvaluate("sum(rate(xmppd_messages_delivered_total[1m]))"),
    route_p99: window.xmppdEvaluate("histogram_quantile(0.99, sum by (le) (rate(xmppd_route_seconds_bucket[1m])))"),
  }));
  const status = await page.textContent("#status");
  const pageError = await page.textContent("#error");
  await page.screenshot({ path: shot, fullPage: true });
  process.stdout.write(JSON.stringify({ errors, panels, evaluated, status, pageError }) + "\n");
  code = 0;
} catch (e) {
  process.stdout.write(JSON.stringify({ errors: [...errors, String(e)] }) + "\n");
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
