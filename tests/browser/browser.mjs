// The harness of the browser tests: headless Chromium (Debian's, never a browser download),
// every request not to the app aborted, each page opened at desktop size and at phone size, a
// screenshot of each, and what was seen printed as JSON. A page script calls `run(pages, visit)`:
//   node PAGE_SCRIPT.mjs BASE_URL SCREENSHOT_DIR [ARG...]
// where `pages(args)` lists the pages ({ name, path, fullPage }) and `visit(page, item, base)`
// loads one and returns what it found. The output is { [name]: { desktop: {...}, phone: {...} } }
// with, for each size, the visit's findings and: blocked (requests to another origin, aborted),
// failed (requests that failed, with the browser's reason), pageErrors, consoleErrors,
// screenshot (its path), scrollWidth (the document's) and viewportWidth.
import { chromium } from 'playwright-core';

export const SIZES = [
  { name: 'desktop', viewport: { width: 1280, height: 900 } },
  { name: 'phone', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    deviceScaleFactor: 2 },
];

async function offlinePage(browser, origin, size) {
  const context = await browser.newContext({
    viewport: size.viewport, isMobile: size.isMobile ?? false, hasTouch: size.hasTouch ?? false,
    deviceScaleFactor: size.deviceScaleFactor ?? 1,
  });
  const page = await context.newPage();
  const seen = { blocked: [], failed: [], pageErrors: [], consoleErrors: [] };
  await page.route('**', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    seen.blocked.push(url);
    return route.abort('blockedbyclient');
  });
  page.on('requestfailed', (request) => seen.failed.push(
    { url: request.url(), error: request.failure()?.errorText ?? '' }));
  page.on('pageerror', (error) => seen.pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.consoleErrors.push(message.text());
  });
  return { context, page, seen };
}

export async function run(pages, visit) {
  const [base, shots, ...args] = process.argv.slice(2);
  const origin = new URL(base).origin;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const results = {};
  try {
    for (const item of pages(args)) {
      results[item.name] = {};
      for (const size of SIZES) {
        const { context, page, seen } = await offlinePage(browser, origin, size);
        let found = {};
        try {
          found = await visit(page, item, base);
        } catch (error) {
          seen.pageErrors.push(String(error));
        }
        const screenshot = `${shots}/${item.name}-${size.name}.png`;
        await page.screenshot({ path: screenshot, fullPage: item.fullPage ?? false });
        const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
        results[item.name][size.name] = {
          ...found, ...seen, screenshot, scrollWidth, viewportWidth: size.viewport.width,
        };
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(results));
}
