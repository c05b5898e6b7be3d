// Loads problem pages (/problems/{code}) of a running Certcloud in headless Chromium (Debian's)
// with every request not to the app aborted, and prints what rendered as JSON:
//   node problem_page.mjs BASE_URL SCREENSHOT_DIR CODE...
import { chromium } from 'playwright-core';

const [base, shots, ...codes] = process.argv.slice(2);
const origin = new URL(base).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const results = {};
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  const blocked = [];
  const errors = [];
  await page.route('**', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  for (const code of codes) {
    const reply = await page.goto(`${base}/problems/${code}`, { waitUntil: 'load' });
    const text = async (selector) => (await page.locator(selector).innerText()).trim();
    results[code] = {
      status: reply.status(), title: await page.title(), heading: await text('#code'),
      meaning: await text('#meaning'), action: await text('#action'),
      example: await text('pre'),
    };
    await page.screenshot({ path: `${shots}/${code}.png`, fullPage: true });
  }
  results._blocked = blocked;
  results._errors = errors;
  await context.close();
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results));
