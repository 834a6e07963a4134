// Watches what a real client sends and receives, without changing it: wraps the global WebSocket
// and fetch that the LiveStore clients construct and call at run time. Shared by v03/client.mjs and
// v04/client.mjs (plain JS, no package imports, so it resolves from either folder).
//
// It counts the pushes the client sends and the pushes the server refuses for a stale parent
// (0.3: `WSMessage.Error` "Invalid parent event number"; 0.4: `ServerAheadError`), and prints
// `E2E-PUSHED` to stderr when the first push leaves, so the harness knows both writers' first pushes
// are on their way before it lets the first one land (see `tests/real_clients.rs`).

export const PUSHED_MARKER = 'E2E-PUSHED'

const PUSH_TAGS = ['"WSMessage.PushReq"', '"SyncWsRpc.Push"', '"SyncHttpRpc.Push"']
const REFUSALS = ['Invalid parent event number', 'ServerAheadError']

const text = (data) => {
  if (typeof data === 'string') return data
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data)
  return ''
}

export const installProbe = () => {
  const counts = { pushes: 0, rejectedPushes: 0 }
  const sent = (data) => {
    const t = text(data)
    if (PUSH_TAGS.some((tag) => t.includes(tag))) {
      counts.pushes += 1
      if (counts.pushes === 1) process.stderr.write(`${PUSHED_MARKER}\n`)
    }
  }
  const received = (data) => {
    const t = text(data)
    if (REFUSALS.some((r) => t.includes(r))) counts.rejectedPushes += 1
  }

  const NativeWebSocket = globalThis.WebSocket
  globalThis.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args)
      this.addEventListener('message', (e) => received(e.data))
    }
    send(data) {
      sent(data)
      return super.send(data)
    }
  }

  const nativeFetch = globalThis.fetch
  globalThis.fetch = async (input, init) => {
    sent(init?.body)
    const res = await nativeFetch(input, init)
    received(await res.clone().text())
    return res
  }

  return counts
}
