// Opens livestore-sync's /status page in headless Chromium as a person would: the login form, a
// wrong secret, the right one (the cookie it sets), the page itself, a screenshot, logging out; and
// once more with the bearer header instead of the form. Run by `tests/status_page.rs`, which owns the
// server and compares what this script read off the page with /metrics.
//
//   node status-page.mjs --url=http://127.0.0.1:PORT --secret=SECRET --screenshot=FILE.png \
//     [--chromium=/usr/bin/chromium] [--timeout-ms=30000]
//
// Writes one JSON line (the report) on stdout and exits 0; on a failure, the report with `error` set
// and exit 1. Everything else goes to stderr.

import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { parseArgs } from 'node:util'

import { chromium } from 'playwright-core'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    secret: { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'timeout-ms': { type: 'string', default: '30000' },
  },
})
for (const required of ['url', 'secret', 'screenshot']) {
  if (!args[required]) {
    console.error(`usage: missing --${required}`)
    process.exit(2)
  }
}
const timeout = Number(args['timeout-ms'])
const log = (...what) => console.error('[status-page]', ...what)
const report = { error: null }

// What the page shows: the numbers tagged with their /metrics series, and what else a test checks.
const readPage = (page) =>
  page.evaluate(() => ({
    title: document.title,
    heading: document.querySelector('h1')?.textContent ?? null,
    scripts: document.scripts.length,
    figures: Object.fromEntries(
      [...document.querySelectorAll('[data-metric]')].map((e) => [e.dataset.metric, e.textContent.trim()]),
    ),
    eventsPerSecond: document.querySelector('#events-per-second')?.textContent ?? null,
    stores: [...document.querySelectorAll('#stores tr')].slice(1).map((r) => [...r.cells].map((c) => c.textContent.trim())),
    recent: [...document.querySelectorAll('#recent tr')].slice(1).map((r) => [...r.cells].map((c) => c.textContent.trim())),
    text: document.body.innerText,
  }))

const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  // As root Chromium needs --no-sandbox; the rest keeps it off the network it cannot reach here.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
})
try {
  // 1. A person with a browser: the login form, a wrong secret, then the right one.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.setDefaultTimeout(timeout)
  page.on('pageerror', (e) => log('pageerror', e.message))
  const first = await page.goto(`${args.url}/status`)
  report.firstStatus = first.status()
  report.loginForm = (await page.locator('form[action="/status/login"] input[name="secret"]').count()) === 1

  await page.fill('input[name="secret"]', `${args.secret}-wrong`)
  const [wrong] = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')])
  report.wrongStatus = wrong.status()
  report.wrongMessage = (await page.locator('#login-error').textContent()) ?? null

  await page.fill('input[name="secret"]', args.secret)
  const [right] = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')])
  report.loggedInStatus = right.status()
  report.loggedInUrl = page.url()
  report.cookies = (await context.cookies()).map(({ name, value, httpOnly, sameSite, path }) => ({
    name, httpOnly, sameSite, path, holdsSecret: value.includes(args.secret), length: value.length,
  }))
  report.page = await readPage(page)

  mkdirSync(dirname(args.screenshot), { recursive: true })
  await page.screenshot({ path: args.screenshot, fullPage: true })
  report.screenshot = args.screenshot

  const [out] = await Promise.all([page.waitForNavigation(), page.click('form[action="/status/logout"] button')])
  report.afterLogoutStatus = out.status()
  const again = await page.goto(`${args.url}/status`)
  report.afterLogoutAgain = again.status()
  await context.close()

  // 2. A tool with the bearer header, no cookie.
  const bearer = await browser.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${args.secret}` } })
  const tool = await bearer.newPage()
  const viaBearer = await tool.goto(`${args.url}/status`)
  report.bearerStatus = viaBearer.status()
  report.bearerFigures = (await readPage(tool)).figures
  await bearer.close()
} catch (e) {
  report.error = String(e?.stack ?? e)
} finally {
  await browser.close()
}
console.log(JSON.stringify(report))
process.exit(report.error ? 1 : 0)
