// Problem pages (/problems/{code}) of a running Certcloud, through the harness in browser.mjs:
//   node problem_page.mjs BASE_URL SCREENSHOT_DIR CODE...
import { run } from './browser.mjs';

await run((codes) => codes.map((code) => ({ name: code, path: `/problems/${code}`,
  fullPage: true })), async (page, { path }, base) => {
  const reply = await page.goto(`${base}${path}`, { waitUntil: 'load' });
  const text = async (selector) => (await page.locator(selector).innerText()).trim();
  return {
    status: reply.status(), title: await page.title(), heading: await text('#code'),
    meaning: await text('#meaning'), action: await text('#action'), example: await text('pre'),
  };
});
