// Opens edged's status page in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), waits until it has read the admin API, checks
// what the test asked for and saves a screenshot. Prints one JSON line with
// what it saw; exits non-zero when a check fails.
//
// Environment: EDGE_URL, EDGE_CERT (a certificate name), EDGE_FAILURE_SNI (an
// SNI of a failed handshake the test made), EDGE_FAILURE_CLIENT
// ("127.0.0.1:port" of another one), EDGE_SCREENSHOT (PNG path),
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  return process.env[name];
};
const timeout = 30000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const external = [];
  page.on("request", (req) => {
    if (!req.url().startsWith(env("EDGE_URL"))) external.push(req.url());
  });
  const consoleErrors = [];
  page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text()); });

  await page.goto(env("EDGE_URL"), { timeout });
  await page.waitForSelector("body[data-loaded=true]", { timeout });
  const certRow = page.locator(`#certificates tr[data-cert="${env("EDGE_CERT")}"]`);
  await certRow.waitFor({ timeout });
  // The failures table refreshes every few seconds: wait for both failures.
  await page.waitForFunction(
    ([sni, client]) => {
      const rows = [...document.querySelectorAll("#failures tr.failure")].map((r) => r.textContent);
      return rows.some((t) => t.includes(sni)) && rows.some((t) => t.includes(client));
    },
    [env("EDGE_FAILURE_SNI"), env("EDGE_FAILURE_CLIENT")],
    { timeout },
  );
  const seen = {
    certificate: (await certRow.locator("td").allInnerTexts()),
    days_left: await certRow.locator("td[data-days-left]").getAttribute("data-days-left"),
    bar_width: await certRow.locator(".bar > span").evaluate((e) => e.style.width),
    failures: await page.locator("#failures tr.failure").allInnerTexts(),
    charts: await page.locator(".chart").evaluateAll((els) => els.map((e) => ({ id: e.id, total: Number(e.dataset.total), bars: e.querySelectorAll("rect").length }))),
    legend: await page.locator(".legend").allInnerTexts(),
    error_hidden: await page.locator("#error").isHidden(),
    external_requests: external,
    console_errors: consoleErrors,
  };
  await page.screenshot({ path: env("EDGE_SCREENSHOT"), fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
