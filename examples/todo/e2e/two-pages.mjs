// Drives the built example app (dist/) in headless Chromium: two independent clients, one adds an
// item, the other shows it; the sync server is stopped and started again in between, and both pages
// must catch up; at the end one page ticks an item off and the other shows it done. Run by `tests/example_app.rs`, which owns the sync server and stops and starts it
// when asked (see "Talking to the harness" below).
//
//   node e2e/two-pages.mjs --server=ws://127.0.0.1:PORT --store=STORE --screenshots=DIR \
//     [--token=TOKEN] [--token-b=TOKEN] [--chromium=/usr/bin/chromium] [--timeout-ms=60000]
//
// Two clients, not two tabs: each page runs in its own Chromium with its own fresh profile
// (--user-data-dir), so each has its own OPFS database, SharedWorker and LiveStore leader, and the
// only way an item gets from one to the other is through the sync server. Two tabs of one profile
// would share one SharedWorker and one leader, and would sync to each other with no server at all.
//
// Talking to the harness: this script writes one line `E2E-STOP-SERVER` or `E2E-START-SERVER` on
// stdout and waits for one line on stdin (`stopped` / `started`) when the server is down / up again.
// At the end it writes one JSON line (the report) on stdout and exits 0; on any failure it writes the
// report with `error` set and exits 1. Everything else goes to stderr.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

import { chromium } from 'playwright-core'
import { preview } from 'vite'

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    store: { type: 'string' },
    screenshots: { type: 'string' },
    token: { type: 'string', default: 'insecure-token-change-me' },
    'token-b': { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
})
for (const required of ['server', 'store', 'screenshots']) {
  if (!args[required]) {
    console.error(`usage: missing --${required}`)
    process.exit(2)
  }
}
const timeout = Number(args['timeout-ms'])
const appRoot = join(dirname(fileURLToPath(import.meta.url)), '..')
const started = Date.now()
const log = (...what) => console.error(`[two-pages +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...what)

const report = { error: null, steps: [], screenshots: [], pages: {} }
const step = (name, since) => {
  const ms = Date.now() - since
  report.steps.push({ name, ms })
  log(`${name}: ${ms} ms`)
}

// --- talking to the harness -----------------------------------------------------------------------
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const askHarness = async (request, expected) => {
  process.stdout.write(`${request}\n`)
  const { value, done } = await stdinLines.next()
  if (done || value.trim() !== expected) throw new Error(`harness answered ${JSON.stringify(value)} to ${request}, expected ${expected}`)
}

// --- the pages --------------------------------------------------------------------------------------
const profiles = []
const contexts = []

const openClient = async (name, appUrl, token) => {
  const profile = mkdtempSync(join(tmpdir(), `todo-e2e-${name}-`))
  profiles.push(profile)
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    viewport: { width: 720, height: 560 },
    // As root Chromium needs --no-sandbox; the rest keeps it off the network it cannot reach here.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  contexts.push(context)
  const page = context.pages()[0] ?? (await context.newPage())
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`[${name} console.${m.type()}]`, m.text())
  })
  page.on('pageerror', (e) => log(`[${name} pageerror]`, e.message))
  const url = new URL(appUrl)
  url.searchParams.set('server', args.server)
  url.searchParams.set('token', token)
  url.searchParams.set('store', args.store)
  await page.goto(url.href)
  return { name, page }
}

/** Waits for `predicate` on the page; on time-out, says what `what` was and what the page showed. */
const waitFor = async (client, what, predicate, arg) => {
  try {
    await client.page.waitForFunction(predicate, arg, { timeout, polling: 100 })
  } catch (e) {
    const state = await pageState(client).catch((e2) => ({ unreadable: String(e2) }))
    throw new Error(`page ${client.name}: ${what} not within ${timeout} ms; the page shows ${JSON.stringify(state)} (${e.message.split('\n')[0]})`)
  }
}

const pageState = (client) =>
  client.page.evaluate(() => ({
    ready: document.body.dataset.ready === 'true',
    status: document.getElementById('status')?.dataset.state,
    count: Number(document.getElementById('count')?.textContent),
    items: [...document.querySelectorAll('#todos li .text')].map((el) => el.textContent),
    completed: [...document.querySelectorAll('#todos li.completed .text')].map((el) => el.textContent),
    error: document.getElementById('error')?.textContent || null,
  }))

const waitReady = (client) =>
  waitFor(client, 'LiveStore started', () => document.body.dataset.ready === 'true' || !document.getElementById('error').hidden)
    .then(async () => {
      const state = await pageState(client)
      if (!state.ready) throw new Error(`page ${client.name} failed to start: ${state.error}`)
    })
const waitStatus = (client, state) =>
  waitFor(client, `status ${state}`, (s) => document.getElementById('status').dataset.state === s, state)
const waitItem = (client, text) =>
  waitFor(client, `item ${JSON.stringify(text)}`, (t) => [...document.querySelectorAll('#todos li .text')].some((el) => el.textContent === t), text)
const waitItems = (client, texts) =>
  waitFor(
    client,
    `exactly the items ${JSON.stringify(texts)}`,
    (ts) => {
      const shown = [...document.querySelectorAll('#todos li .text')].map((el) => el.textContent).sort()
      return JSON.stringify(shown) === JSON.stringify([...ts].sort()) && Number(document.getElementById('count').textContent) === ts.length
    },
    texts,
  )

/** Types `text` into the page's input and presses Enter, as a person would. */
const addItem = async (client, text) => {
  await client.page.fill('#new-todo', text)
  await client.page.press('#new-todo', 'Enter')
  await waitItem(client, text) // its own page shows it at once (local-first)
}

const screenshot = async (client, label) => {
  const path = join(args.screenshots, `${label}-${client.name}.png`)
  await client.page.screenshot({ path })
  report.screenshots.push(path)
}

// --- the scenario -----------------------------------------------------------------------------------
let previewServer
try {
  mkdirSync(args.screenshots, { recursive: true })

  // Serve the built app the way the README does (`npm run preview`), on a free port of 127.0.0.1:
  // OPFS and SharedWorker need a secure context, which http://127.0.0.1 is.
  previewServer = await preview({
    root: appRoot,
    logLevel: 'warn',
    preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false },
  })
  const appUrl = `http://127.0.0.1:${previewServer.httpServer.address().port}/`
  report.appUrl = appUrl
  log(`app served at ${appUrl}`)

  const items = {
    first: 'first item, added in A',
    reply: 'reply, added in B',
    offline: 'added in A while the server was down',
    after: 'added in B after the restart',
  }

  let t = Date.now()
  const [a, b] = await Promise.all([openClient('A', appUrl, args.token), openClient('B', appUrl, args['token-b'] ?? args.token)])
  await Promise.all([waitReady(a), waitReady(b)])
  step('both pages started LiveStore', t)
  t = Date.now()
  await Promise.all([waitStatus(a, 'connected'), waitStatus(b, 'connected')])
  step('both pages connected to the server', t)

  // 1. A adds an item; B shows it. B answers; A shows that.
  t = Date.now()
  await addItem(a, items.first)
  await waitItem(b, items.first)
  step('item added in A shown in B', t)
  t = Date.now()
  await addItem(b, items.reply)
  await waitItem(a, items.reply)
  step('item added in B shown in A', t)
  await Promise.all([screenshot(a, '1-synced'), screenshot(b, '1-synced')])

  // 2. The server goes away. Both pages notice; A keeps working offline.
  t = Date.now()
  await askHarness('E2E-STOP-SERVER', 'stopped')
  await Promise.all([waitStatus(a, 'offline'), waitStatus(b, 'offline')])
  step('both pages noticed the server is down', t)
  await addItem(a, items.offline)
  const bWhileDown = await pageState(b)
  if (bWhileDown.items.includes(items.offline)) throw new Error('B shows the item A added while the server was down: the pages sync without the server')
  await Promise.all([screenshot(a, '2-server-down'), screenshot(b, '2-server-down')])

  // 3. The server comes back on the same port and database. The pages reconnect by themselves; A's
  //    offline item reaches B, and an item added in B after the restart reaches A.
  t = Date.now()
  await askHarness('E2E-START-SERVER', 'started')
  await Promise.all([waitStatus(a, 'connected'), waitStatus(b, 'connected')])
  step('both pages reconnected after the restart', t)
  t = Date.now()
  await waitItem(b, items.offline)
  step('item added offline in A shown in B', t)
  t = Date.now()
  await addItem(b, items.after)
  await waitItem(a, items.after)
  step('item added in B after the restart shown in A', t)

  // 4. A ticks off the first item; B shows it done.
  t = Date.now()
  await a.page.locator('#todos li', { hasText: items.first }).locator('input[type=checkbox]').check()
  const done = (t) => [...document.querySelectorAll('#todos li.completed .text')].some((el) => el.textContent === t)
  await waitFor(a, 'the first item ticked off', done, items.first)
  await waitFor(b, 'the first item ticked off', done, items.first)
  step('item ticked off in A shown done in B', t)

  const all = Object.values(items)
  await Promise.all([waitItems(a, all), waitItems(b, all)])
  await Promise.all([screenshot(a, '3-caught-up'), screenshot(b, '3-caught-up')])
  report.pages.A = await pageState(a)
  report.pages.B = await pageState(b)
  report.expected = all
} catch (e) {
  report.error = e instanceof Error ? e.message : String(e)
  log('FAILED:', report.error)
  // A picture of what the pages showed when it failed.
  for (const [i, context] of contexts.entries()) {
    const page = context.pages()[0]
    if (!page) continue
    const path = join(args.screenshots, `failure-${'AB'[i]}.png`)
    await page.screenshot({ path }).then(() => report.screenshots.push(path)).catch(() => {})
  }
} finally {
  await Promise.all(contexts.map((c) => c.close().catch(() => {})))
  await previewServer?.close().catch(() => {})
  for (const p of profiles) rmSync(p, { recursive: true, force: true })
  report.totalMs = Date.now() - started
  process.stdout.write(`${JSON.stringify(report)}\n`)
  process.exit(report.error ? 1 : 0)
}
