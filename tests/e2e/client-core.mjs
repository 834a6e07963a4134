// What the two end-to-end clients (v03/client.mjs and v04/client.mjs) share: the options, the
// schema, committing, waiting for sync, and the report. Each client passes in the LiveStore and
// Effect modules it imported from its own node_modules (this file sits above both folders, so it
// imports no package itself), its sync backend, and the two calls that differ between versions.
//
// Options (each also as an environment variable E2E_<NAME>, e.g. E2E_URL, E2E_RUN_MS):
//   --url                 the server URL (see the client for what it appends)
//   --store               storeId
//   --token               auth token, sent as `syncPayload: { authToken }`
//   --client              clientId (must differ between concurrent clients); the ids of the events
//                         this client creates are `<client>-0000`, `<client>-0001`, ...
//   --commit              how many `v1.TodoCreated` events to commit (default 0)
//   --expect              total number of events (rows) expected once synced (default = --commit)
//   --timeout-ms          give up waiting for sync after this long (default 20000)
//   --commit-interval-ms  pause between two commits (default 0: all N commits in one synchronous burst
//                         right after boot). Keep 0: LiveStore 0.4.0 corrupts its own pending chain when
//                         `store.commit` runs while a rebase is in progress (it pushes non-contiguous
//                         batches and re-pushes events under new seqNums), which would make the
//                         concurrent-writer tests flaky for reasons that have nothing to do with the server.
//   --wait-go             after boot, print the line `E2E-READY` to stderr and wait for one line on stdin
//                         (`go [EPOCH_MS]`) before committing; with EPOCH_MS, commit at that instant. The
//                         test harness releases all concurrent writers at once and makes their first
//                         pushes race (see tests/real_clients.rs): one is refused and has to rebase.
//   --start-at            alternatively: wall-clock time (ms since the epoch) at which to start committing.
//   --mode=sync           (default) wait until synced: the table holds >= expect rows AND the leader's
//                         sync state has no pending events AND upstream head >= expect. Exit 0 when
//                         synced, 2 on timeout.
//   --mode=nosync         run for --run-ms (default 3000) and report; exit 0 iff the client did NOT
//                         sync (no row from any other client and upstream head 0), 3 otherwise.
//
// stdout: exactly ONE JSON line:
//   { "version", "transport", "clientId", "storeId", "mode", "synced", "timedOut",
//     "count", "ids":[...sorted row ids], "foreignCount", "upstreamHead", "localHead",
//     "pendingCount", "elapsedMs", "commitStartMs"? (epoch ms of the first commit),
//     "pushes", "rejectedPushes" (what probe.mjs saw on the wire), "error"? }
// stderr also gets `E2E-PUSHED` when the client's first push leaves (probe.mjs).
// Everything LiveStore prints (it logs with console.log) goes to stderr.
// Exit codes: 0 ok, 2 sync timeout, 3 unexpectedly synced (nosync mode), 1 crash/bad usage.

import { parseArgs } from 'node:util'
import { installProbe } from './probe.mjs'

// LiveStore logs to stdout; keep stdout for our single JSON line.
const writeStdout = process.stdout.write.bind(process.stdout)
console.log = (...a) => console.error(...a)
console.info = (...a) => console.error(...a)
console.debug = (...a) => console.error(...a)

// Installed on import, before the client imports LiveStore (some of its modules take the global
// WebSocket when they load).
const probe = installProbe()

export function usage(msg) {
  console.error(`client.mjs: ${msg}`)
  process.exit(1)
}

/** The parsed options; `extra` are a client's own (parseArgs option specs). `opt`/`int` read any. */
export const parseOptions = (extra = {}) => {
  const { values: argv } = parseArgs({
    options: {
      url: { type: 'string' },
      store: { type: 'string' },
      token: { type: 'string' },
      client: { type: 'string' },
      commit: { type: 'string' },
      expect: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'commit-interval-ms': { type: 'string' },
      mode: { type: 'string' },
      'run-ms': { type: 'string' },
      'start-at': { type: 'string' },
      'wait-go': { type: 'boolean' },
      ...extra,
    },
    strict: true,
  })
  const opt = (name, dflt) => {
    const v = argv[name] ?? process.env[`E2E_${name.toUpperCase().replaceAll('-', '_')}`]
    if (v === undefined || v === '') {
      if (dflt === undefined) usage(`missing --${name}`)
      return dflt
    }
    return v
  }
  const int = (name, dflt) => {
    const v = Number(opt(name, dflt === undefined ? undefined : String(dflt)))
    if (!Number.isInteger(v) || v < 0) usage(`--${name} must be a non-negative integer`)
    return v
  }
  const commitCount = int('commit', 0)
  const options = {
    opt,
    int,
    url: opt('url'),
    storeId: opt('store'),
    authToken: opt('token'),
    clientId: opt('client'),
    commitCount,
    expected: int('expect', commitCount),
    timeoutMs: int('timeout-ms', 20000),
    commitIntervalMs: int('commit-interval-ms', 0),
    mode: opt('mode', 'sync'),
    runMs: int('run-ms', 3000),
    startAt: int('start-at', 0),
    waitGo: argv['wait-go'] === true || process.env.E2E_WAIT_GO === '1',
  }
  if (options.mode !== 'sync' && options.mode !== 'nosync') usage('--mode must be sync or nosync')
  if (typeof globalThis.WebSocket !== 'function') usage('no global WebSocket: run with node --experimental-websocket')
  return options
}

/**
 * Runs the client to its end (exits the process).
 * - `lib`: `{ makeAdapter, createStorePromise, Events, Schema, State, makeSchema, makeShutdownDeferred,
 *   Deferred, Effect, Exit, Cause }` from the client's own node_modules;
 * - `makeBackend(url)`: the sync backend;
 * - `syncState(store)`: an Effect of the leader's sync state;
 * - `shutdown(store)`: a promise of the store's shutdown.
 */
export const runClient = async ({ version, transport, options, lib, makeBackend, syncState, shutdown }) => {
  const { url, storeId, authToken, clientId, commitCount, expected, timeoutMs, commitIntervalMs, mode, runMs, waitGo } =
    options
  let { startAt } = options
  const { makeAdapter, createStorePromise, Events, Schema, State, makeSchema, makeShutdownDeferred } = lib
  const { Deferred, Effect, Exit, Cause } = lib
  const backend = makeBackend(url)

  // Event args deliberately NOT in sorted key order ({text, id} and a nested {zeta, alpha}): a server
  // that reorders JSON keys (e.g. stores jsonb) breaks the client's echo matching.
  const events = {
    todoCreated: Events.synced({
      name: 'v1.TodoCreated',
      schema: Schema.Struct({
        text: Schema.String,
        id: Schema.String,
        meta: Schema.Struct({ zeta: Schema.String, alpha: Schema.Number }),
      }),
    }),
  }
  const todos = State.SQLite.table({
    name: 'todos',
    columns: {
      id: State.SQLite.text({ primaryKey: true }),
      text: State.SQLite.text({ default: '' }),
      zeta: State.SQLite.text({ default: '' }),
      alpha: State.SQLite.integer({ default: 0 }),
    },
  })
  const materializers = State.SQLite.materializers(events, {
    'v1.TodoCreated': ({ id, text, meta }) => todos.insert({ id, text, zeta: meta.zeta, alpha: meta.alpha }),
  })
  const schema = makeSchema({ events, state: State.SQLite.makeState({ tables: { todos }, materializers }) })

  const started = Date.now()
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
  const idOf = (i) => `${clientId}-${String(i).padStart(4, '0')}`

  let store
  // Set when the store shuts down on its own (e.g. a materializer error after a bad echo): no need to
  // wait for the timeout then.
  let storeDied
  let finishing = false
  const report = {
    version,
    transport,
    clientId,
    storeId,
    mode,
    synced: false,
    timedOut: false,
    count: 0,
    ids: [],
    foreignCount: 0,
    upstreamHead: null,
    localHead: null,
    pendingCount: null,
    elapsedMs: 0,
  }

  const observe = async () => {
    const rows = store.query({ query: 'SELECT id FROM todos ORDER BY id', bindValues: {} })
    const ids = rows.map((r) => r.id)
    const st = await Effect.runPromise(syncState(store))
    report.count = ids.length
    report.ids = ids
    report.foreignCount = ids.filter((id) => !id.startsWith(`${clientId}-`)).length
    report.upstreamHead = st.upstreamHead.global
    report.localHead = st.localHead.global
    report.pendingCount = st.pending.length
    report.pushes = probe.pushes
    report.rejectedPushes = probe.rejectedPushes
    report.elapsedMs = Date.now() - started
    return report
  }

  const finish = async (code) => {
    finishing = true
    writeStdout(`${JSON.stringify(report)}\n`)
    if (store !== undefined) {
      // bounded: a hung shutdown must not hang the test
      await Promise.race([shutdown(store).catch((e) => console.error('shutdown failed', e)), sleep(3000)])
    }
    // Give the WebSocket close frame time to leave (exiting at once makes the server see 1006).
    await sleep(100)
    process.exit(code)
  }

  try {
    const adapter = makeAdapter({
      storage: { type: 'in-memory' },
      clientId,
      sync: { backend, onSyncError: 'ignore' },
    })
    const shutdownDeferred = await Effect.runPromise(makeShutdownDeferred)
    Effect.runPromiseExit(Deferred.await(shutdownDeferred)).then((exit) => {
      if (!finishing) {
        storeDied = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : `shut down: ${JSON.stringify(exit.value)}`
        console.error('client.mjs: the store shut down by itself:', storeDied)
      }
    })
    store = await createStorePromise({
      schema,
      adapter,
      storeId,
      syncPayload: { authToken },
      disableDevtools: true,
      shutdownDeferred,
    })

    if (commitCount > 0 && waitGo) {
      process.stderr.write('E2E-READY\n')
      await new Promise((resolve, reject) => {
        let buf = ''
        process.stdin.setEncoding('utf8')
        process.stdin.on('data', (d) => {
          buf += d
          if (buf.includes('\n')) {
            process.stdin.pause()
            const at = Number(buf.trim().split(/\s+/)[1])
            if (Number.isInteger(at)) startAt = at
            resolve()
          }
        })
        process.stdin.on('end', () => reject(new Error('stdin closed before the go line (--wait-go)')))
      })
    }
    if (commitCount > 0 && startAt > Date.now()) await sleep(startAt - Date.now())
    if (commitCount > 0) report.commitStartMs = Date.now()
    for (let i = 0; i < commitCount; i++) {
      store.commit(
        events.todoCreated({ text: `todo ${i} from ${clientId}`, id: idOf(i), meta: { zeta: `z-${clientId}`, alpha: i } }),
      )
      if (commitIntervalMs > 0) await sleep(commitIntervalMs)
    }

    if (mode === 'sync') {
      const deadline = started + timeoutMs
      for (;;) {
        const r = await observe()
        if (r.count >= expected && r.pendingCount === 0 && r.upstreamHead >= expected) {
          r.synced = true
          break
        }
        if (storeDied !== undefined) {
          r.error = `store shut down by itself: ${storeDied}`
          break
        }
        if (Date.now() > deadline) {
          r.timedOut = true
          break
        }
        await sleep(50)
      }
      await finish(report.synced ? 0 : report.error !== undefined ? 1 : 2)
    } else {
      await sleep(runMs)
      const r = await observe()
      r.synced = r.upstreamHead > 0 || r.foreignCount > 0
      if (storeDied !== undefined) r.error = `store shut down by itself: ${storeDied}`
      await finish(r.error !== undefined ? 1 : r.synced ? 3 : 0)
    }
  } catch (e) {
    console.error('client.mjs failed:', e)
    report.error = String(e?.stack ?? e)
    report.elapsedMs = Date.now() - started
    await finish(1)
  }
}
