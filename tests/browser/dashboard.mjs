// Drives the dashboard in Debian's headless Chromium as a person would:
// opens the address `sharegrid demo --serve` printed (its token in the
// fragment), checks the network page lists the providers, submits a job
// from the Submit page with a module picked from disk, watches the job
// page until every task is accepted and the tiles are drawn, and keeps a
// screenshot. Prints one JSON line of what it saw; exits non-zero on any
// failure, with the page's text.
//
//   node dashboard.mjs URL MODULE SCREENSHOT
import { chromium } from "playwright-core";

const [url, module, screenshot] = process.argv.slice(2);
if (!url || !module || !screenshot) {
  console.error("usage: node dashboard.mjs URL MODULE SCREENSHOT");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Without the background-networking flags Chromium dials Google's hosts
  // at start, which this machine's closed network refuses.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
const requests = new Set();
page.on("request", (r) => requests.add(new URL(r.url()).host));
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));
const seen = {};
try {
  await page.goto(url);
  // The token left the address bar for the tab's session storage.
  await page.waitForFunction(() => document.body.dataset.ready === "1");
  seen.token_hidden = !page.url().includes("token=");
  await page.waitForSelector("table.offers tbody tr", { timeout: 30_000 });
  seen.providers = await page.locator("table.offers tbody tr").count();

  await page.click('nav a[data-nav="submit"]');
  await page.waitForSelector("form#submit");
  await page.fill('input[name="name"]', "browser-mandelbrot");
  await page.setInputFiles('input[name="module"]', module);
  await page.fill('input[name="args"]', "{col} {row} 2 2 96 64 64");
  await page.fill('textarea[name="sweep"]', "col = 0, 1\nrow = 0, 1");
  await page.fill('input[name="fuel"]', "2G");
  await page.click('form#submit button[type="submit"]');
  await page.waitForFunction(() => location.hash.startsWith("#/job/") || document.querySelector("#submit-error"), null, {
    timeout: 30_000,
  });
  const failed = await page.locator("#submit-error").count();
  if (failed) throw new Error("the page refused the job: " + (await page.locator("#submit-error").innerText()));
  seen.job = decodeURIComponent(new URL(page.url()).hash.slice("#/job/".length));

  // Live updates redraw the page as tasks end: no reload.
  await page.waitForFunction(() => document.querySelector("#job-state")?.textContent === "done", null, {
    timeout: 180_000,
  });
  await page.waitForFunction(() => document.querySelector("canvas#mosaic")?.dataset.tiles === "4", null, {
    timeout: 30_000,
  });
  seen.tiles = Number(await page.locator("canvas#mosaic").getAttribute("data-tiles"));
  // The mosaic is the image, not a blank canvas: count distinct colours.
  seen.colours = await page.evaluate(() => {
    const c = document.querySelector("canvas#mosaic");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const set = new Set();
    for (let i = 0; i < d.length; i += 4 * 7) set.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    return set.size;
  });
  seen.tasks = await page.locator("table.tasks tbody tr").count();
  await page.screenshot({ path: screenshot, fullPage: true });

  // A provider's page: its balance over time, from the ledger.
  await page.click('nav a[data-nav="network"]');
  await page.waitForSelector("table.offers tbody tr a");
  await page.click("table.offers tbody tr a");
  await page.waitForSelector("svg.chart");
  seen.balance_points = Number(await page.locator("svg.chart").getAttribute("data-points"));

  await page.click('nav a[data-nav="ledger"]');
  await page.waitForSelector("table.blocks tbody tr");
  seen.blocks = await page.locator("table.blocks tbody tr").count();
  seen.hosts = [...requests];
  seen.page_errors = errors;
  console.log(JSON.stringify(seen));
} catch (e) {
  const text = await page.locator("body").innerText().catch(() => "");
  console.error(`dashboard test failed: ${e.message}\nseen: ${JSON.stringify(seen)}\npage errors: ${errors.join("; ")}\n--- page ---\n${text}`);
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
