// The LiveStore leader worker: it owns the OPFS database and talks to the sync server.
//
// The page starts it with the sync server's URL in the worker script's query (`?server=ws://…`, see
// main.ts), because a worker cannot see the page's URL. The auth token does not come this way: the
// page hands it to LiveStore as `syncPayload`, and LiveStore sends it to the server.
import { makeWorker } from '@livestore/adapter-web/worker'
import { makeWsSync } from '@livestore/sync-cf/client'

import { schema } from './schema.ts'

const server = new URL(self.location.href).searchParams.get('server') ?? 'ws://localhost:8000'

makeWorker({
  schema,
  sync: {
    backend: makeWsSync({ url: server }),
    // Start at once from the local data, even when the server is down; sync catches up later.
    initialSyncOptions: { _tag: 'Skip' },
  },
})
