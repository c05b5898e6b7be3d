// The docs pages (Swagger UI at /docs, ReDoc at /redoc) of a running Certcloud, through the
// harness in browser.mjs:   node docs_offline.mjs BASE_URL SCREENSHOT_DIR
import { run } from './browser.mjs';

const PAGES = [
  // Swagger UI renders one .opblock per operation; ReDoc one section per operation.
  { path: '/docs', name: 'swagger', selector: '.opblock' },
  { path: '/redoc', name: 'redoc', selector: '[data-section-id^="operation/"]' },
];

await run(() => PAGES, async (page, { path, selector }, base) => {
  await page.goto(`${base}${path}`, { waitUntil: 'load', timeout: 60000 });
  await page.waitForSelector(selector, { timeout: 60000 });
  await page.waitForLoadState('networkidle', { timeout: 30000 });
  return { rendered: await page.locator(selector).count(), title: await page.title() };
});
