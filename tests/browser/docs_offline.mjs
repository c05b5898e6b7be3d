// Loads the docs pages of a running Certcloud in headless Chromium (Debian's, never a browser
// download) with every request not to the app aborted, and prints what rendered as JSON:
//   node docs_offline.mjs BASE_URL SCREENSHOT_DIR
import { chromium } from 'playwright-core';

const [base, shots] = process.argv.slice(2);
const origin = new URL(base).origin;
const PAGES = [
  // Swagger UI renders one .opblock per operation; ReDoc one section per operation.
  { path: '/docs', name: 'swagger', selector: '.opblock' },
  { path: '/redoc', name: 'redoc', selector: '[data-section-id^="operation/"]' },
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const results = {};
try {
  for (const { path, name, selector } of PAGES) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const blocked = [];
    const failed = [];
    const errors = [];
    await page.route('**', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${origin}/`)) return route.continue();
      blocked.push(url);
      return route.abort('blockedbyclient');
    });
    page.on('requestfailed', (request) => failed.push(
      { url: request.url(), error: request.failure()?.errorText ?? '' }));
    page.on('pageerror', (error) => errors.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    let rendered = 0;
    try {
      await page.goto(`${base}${path}`, { waitUntil: 'load', timeout: 60000 });
      await page.waitForSelector(selector, { timeout: 60000 });
      await page.waitForLoadState('networkidle', { timeout: 30000 });
      rendered = await page.locator(selector).count();
    } catch (error) {
      errors.push(String(error));
    }
    await page.screenshot({ path: `${shots}/${name}.png` });
    results[name] = { rendered, blocked, failed, errors, title: await page.title() };
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(results));
