// The page: reads its settings from the URL, opens the LiveStore store, renders the todos and the
// connection state, and commits an event for each change.
//
// Settings (all optional), e.g. http://127.0.0.1:5173/?store=groceries&server=ws://127.0.0.1:8000
//   server  the livestore-sync server           default ws://localhost:8000
//   token   its AUTH_TOKEN                      default insecure-token-change-me (the server's default)
//   store   the store id: pages with the same   default todo-example
//           store id see the same todos
import { makePersistedAdapter } from '@livestore/adapter-web'
import LiveStoreSharedWorker from '@livestore/adapter-web/shared-worker?sharedworker'
import { createStorePromise, nanoid, queryDb } from '@livestore/livestore'
import { Effect, Stream } from 'effect'

import workerUrl from './livestore.worker.ts?worker&url'
import { events, schema, tables } from './schema.ts'

const params = new URLSearchParams(location.search)
const server = params.get('server') ?? 'ws://localhost:8000'
const token = params.get('token') ?? 'insecure-token-change-me'
const storeId = params.get('store') ?? 'todo-example'

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
$('store-id').textContent = storeId
$('server-url').textContent = server

const showError = (what: string, error: unknown) => {
  const el = $('error')
  el.hidden = false
  el.textContent += `${what}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`
  console.error(what, error)
}

const adapter = makePersistedAdapter({
  storage: { type: 'opfs' },
  // The leader worker learns the server URL from its script URL (it cannot read the page's).
  worker: ({ name }) => {
    const url = new URL(workerUrl, location.href)
    url.searchParams.set('server', server)
    return new Worker(url, { type: 'module', name })
  },
  sharedWorker: LiveStoreSharedWorker,
})

try {
  const store = await createStorePromise({
    schema,
    adapter,
    storeId,
    syncPayload: { authToken: token },
  })

  // The todos, oldest first, re-rendered whenever the table changes (local commits and synced events).
  const todos$ = queryDb(tables.todos.orderBy([{ col: 'createdAt', direction: 'asc' }, { col: 'id', direction: 'asc' }]), {
    label: 'todos',
  })
  store.subscribe(todos$, (todos) => {
    const list = $('todos')
    list.replaceChildren(
      ...todos.map((todo) => {
        const li = document.createElement('li')
        li.dataset.id = todo.id
        li.classList.toggle('completed', todo.completed)
        const box = document.createElement('input')
        box.type = 'checkbox'
        box.checked = todo.completed
        box.addEventListener('change', () => store.commit(events.todoToggled({ id: todo.id, completed: box.checked })))
        const text = document.createElement('span')
        text.className = 'text'
        text.textContent = todo.text
        li.append(box, text)
        return li
      }),
    )
    $('count').textContent = String(todos.length)
  })

  $<HTMLFormElement>('new-todo-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const input = $<HTMLInputElement>('new-todo')
    const text = input.value.trim()
    if (text === '') return
    store.commit(events.todoCreated({ id: nanoid(), text, createdAt: Date.now() }))
    input.value = ''
  })

  // Whether the leader is connected to the sync server. LiveStore reconnects by itself; meanwhile
  // changes are kept locally and pushed once the server is back.
  store.networkStatus.changes.pipe(
    Stream.runForEach((status) =>
      Effect.sync(() => {
        const el = $('status')
        el.dataset.state = status.isConnected ? 'connected' : 'offline'
        el.textContent = status.isConnected ? 'connected' : 'offline (changes are kept and sent later)'
      }),
    ),
    Effect.runFork,
  )
  document.body.dataset.ready = 'true'
} catch (error) {
  showError('LiveStore did not start', error)
}
