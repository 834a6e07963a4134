// End-to-end client: the REAL, unmodified LiveStore 0.4.0 npm client (`makeWsSync` or `makeHttpSync`
// from `@livestore/sync-cf/client`) driven headless in Node, used by `tests/real_clients.rs`.
//
// Run:  node --experimental-websocket client.mjs --transport=ws|http --url=ws://127.0.0.1:PORT \
//         --store=STORE --token=TOKEN --client=CLIENT_ID --commit=N --expect=M [--timeout-ms=20000] \
//         [--mode=sync|nosync] [--run-ms=3000] [--commit-interval-ms=0] [--poll-ms=500] [--wait-go]
//
//   --transport   `ws` (makeWsSync, default) or `http` (makeHttpSync)
//   --url         the server URL, used as is: the client appends only `?storeId=..&payload=..&transport=..`
//                 (ws: `ws://host:port`; http: `http://host:port`)
//   --poll-ms     http only: `livePull.pollInterval` in ms (the client's default is 5000; ours 500)
//
// The other options, the report on stdout and the exit codes: ../client-core.mjs.

import { parseOptions, runClient, usage } from '../client-core.mjs'

const options = parseOptions({ transport: { type: 'string' }, 'poll-ms': { type: 'string' } })
const transport = options.opt('transport', 'ws')
const pollMs = options.int('poll-ms', 500)
if (transport !== 'ws' && transport !== 'http') usage('--transport must be ws or http')

const { makeAdapter } = await import('@livestore/adapter-node')
const { createStorePromise, Events, Schema, State, makeSchema, StoreInternalsSymbol, makeShutdownDeferred } = await import(
  '@livestore/livestore'
)
const { makeWsSync, makeHttpSync } = await import('@livestore/sync-cf/client')
const { Deferred, Effect, Exit, Cause } = await import('effect')

await runClient({
  version: '0.4.0',
  transport,
  options,
  lib: { makeAdapter, createStorePromise, Events, Schema, State, makeSchema, makeShutdownDeferred, Deferred, Effect, Exit, Cause },
  makeBackend: (url) =>
    transport === 'ws' ? makeWsSync({ url }) : makeHttpSync({ url, livePull: { pollInterval: pollMs } }),
  syncState: (store) => store[StoreInternalsSymbol].clientSession.leaderThread.syncState.get,
  shutdown: (store) => store.shutdownPromise(),
})
