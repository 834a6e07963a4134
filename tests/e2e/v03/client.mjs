// End-to-end client: the REAL, unmodified LiveStore 0.3.1 npm client (`makeCfSync` from
// `@livestore/sync-cf`) driven headless in Node, used by `tests/real_clients.rs`.
//
// Run:  node --experimental-websocket client.mjs --url=ws://127.0.0.1:PORT --store=STORE \
//         --token=TOKEN --client=CLIENT_ID --commit=N --expect=M [--timeout-ms=20000] \
//         [--mode=sync|nosync] [--run-ms=3000] [--commit-interval-ms=0] [--wait-go]
//
//   --url   base URL of the server; makeCfSync appends `/websocket?storeId=..&payload=..`
//
// The other options, the report on stdout and the exit codes: ../client-core.mjs.

import { parseOptions, runClient } from '../client-core.mjs'

const options = parseOptions()

const { makeAdapter } = await import('@livestore/adapter-node')
const { createStorePromise, Events, Schema, State, makeSchema, makeShutdownDeferred } = await import('@livestore/livestore')
const { makeCfSync } = await import('@livestore/sync-cf')
const { Deferred, Effect, Exit, Cause } = await import('effect')

await runClient({
  version: '0.3.1',
  transport: 'ws',
  options,
  lib: { makeAdapter, createStorePromise, Events, Schema, State, makeSchema, makeShutdownDeferred, Deferred, Effect, Exit, Cause },
  makeBackend: (url) => makeCfSync({ url }),
  syncState: (store) => store.clientSession.leaderThread.getSyncState,
  shutdown: (store) => store.shutdown(),
})
