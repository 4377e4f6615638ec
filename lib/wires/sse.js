'use strict'
// Server-sent events for the OpenAI and Anthropic wires: the response head, one event's bytes,
// and a body that sends a keep-alive while it waits for its next event, so that no client, proxy
// or load balancer idle timer fires while a batch job runs.

/** How often a waiting stream sends a keep-alive, by default (at most every 15 s). */
const KEEP_ALIVE_MS = 10_000

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
}

/** An OpenAI event: `data: <json>` (or `data: [DONE]`). */
function dataEvent(value) {
  return Buffer.from(`data: ${typeof value === 'string' ? value : JSON.stringify(value)}\n\n`)
}

/** A named event (Anthropic's): `event: <type>` and `data: <json>`. */
function namedEvent(type, value) {
  return Buffer.from(`event: ${type}\ndata: ${typeof value === 'string' ? value : JSON.stringify(value)}\n\n`)
}

/** The keep-alive of each wire: an SSE comment (OpenAI), Anthropic's `ping` event. */
const OPENAI_PING = Buffer.from(': keep-alive\n\n')
const ANTHROPIC_PING = namedEvent('ping', '{"type": "ping"}')

/**
 * The items of `source` (an async iterable of Buffers), with `ping` yielded whenever `intervalMs`
 * passes without one. A Buffer-yielding async generator, as server.js writes bodies.
 */
async function* withKeepAlive(source, intervalMs, ping) {
  const it = source[Symbol.asyncIterator]()
  let next = null
  try {
    for (;;) {
      if (!next) next = it.next()
      let timer
      const tick = new Promise((resolve) => {
        timer = setTimeout(resolve, intervalMs, 'tick')
      })
      const r = await Promise.race([next, tick])
      clearTimeout(timer)
      if (r === 'tick') {
        yield ping
        continue
      }
      next = null
      if (r.done) return
      yield r.value
    }
  } finally {
    // The caller went away: let the source end.
    if (next === null) await it.return?.()
    else it.return?.().catch(() => {})
  }
}

module.exports = { KEEP_ALIVE_MS, SSE_HEADERS, dataEvent, namedEvent, OPENAI_PING, ANTHROPIC_PING, withKeepAlive }
