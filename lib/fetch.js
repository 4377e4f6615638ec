'use strict'
// batchFetch: a WHATWG `fetch` for libraries that sign their own Bedrock runtime calls (the Vercel
// AI SDK's Bedrock provider, Anthropic's Bedrock SDK) and accept a custom `fetch`. Runtime calls
// are answered by the wire handler through a door; everything else goes to the underlying
// `fetch`, untouched. `.client` is a client over the same door.

const { clientOver } = require('./client.js')
const { Door } = require('./door.js')
const { abortError } = require('./errors.js')
const { WireHandler } = require('./wire.js')

/** The runtime hosts of a region: the standard one and its FIPS twin (`.amazonaws.com.cn` in China). */
function runtimeHosts(region) {
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com'
  return [`bedrock-runtime.${region}.${suffix}`, `bedrock-runtime-fips.${region}.${suffix}`]
}

/** A base URL as `{ origin, path }` (the path without its trailing slash). */
function base(url) {
  const u = new URL(url)
  return { origin: u.origin, path: u.pathname.replace(/\/+$/, '') }
}

/** The URL of a fetch input (a string, a URL or a Request). */
function urlOf(input) {
  if (typeof input === 'string') return new URL(input)
  if (input instanceof URL) return input
  return new URL(input.url)
}

/** A stream body that errors with AbortError when `signal` aborts while it is read, as fetch's does. */
async function* abortable(frames, signal) {
  const it = frames[Symbol.asyncIterator]()
  let onAbort
  const aborted = new Promise((_, reject) => {
    onAbort = () => reject(abortError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  aborted.catch(() => {})
  try {
    for (;;) {
      if (signal.aborted) throw abortError(signal)
      const next = await Promise.race([it.next(), aborted])
      if (next.done) return
      yield next.value
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    it.return?.()
  }
}

/**
 * `batchFetch(options)`: a `fetch` whose Bedrock runtime calls (`POST /model/{id}/invoke`,
 * `/converse` and their streaming twins, to the region's runtime host, its FIPS host, the
 * client's `endpoints.bedrockRuntime` or a base URL in `intercept`) run through the batch
 * engine. The request's SigV4 headers are ignored: the engine signs its own calls. Options are the
 * client's, plus `fetch` (the underlying fetch; default the global one) and `intercept` (more base
 * URLs whose runtime calls are batched). The function has the handle's methods: `flush()`,
 * `close()`, `destroy()`, `stats()`, `on()`, and `client`.
 */
function batchFetch(options = {}) {
  const { fetch: underlying = globalThis.fetch, intercept = [], ...clientOptions } = options
  if (typeof underlying !== 'function') throw new TypeError('batchFetch: the fetch option must be a function')
  const extra = (Array.isArray(intercept) ? intercept : [intercept]).map((u) => {
    if (typeof u !== 'string' && !(u instanceof URL))
      throw new TypeError('batchFetch: intercept must be a base URL or a list of them')
    return base(String(u))
  })
  const door = new Door(clientOptions)
  const client = clientOver(door)
  const handler = new WireHandler(door)
  let hosts = null
  const bases = () => {
    if (!hosts) {
      const config = door.config
      hosts = { names: new Set(runtimeHosts(config.region)), bases: [...extra] }
      const runtime = config.endpoints?.bedrockRuntime ?? clientOptions.endpoints?.bedrockRuntime
      if (runtime) hosts.bases.push(base(runtime))
    }
    return hosts
  }
  /** The runtime path of a URL this fetch batches, or null. */
  const runtimePath = (url) => {
    const h = bases()
    if (url.protocol === 'https:' && h.names.has(url.hostname)) return url.pathname
    for (const b of h.bases)
      if (url.origin === b.origin && url.pathname.startsWith(`${b.path}/`)) return url.pathname.slice(b.path.length)
    return null
  }

  async function fetchBatched(input, init) {
    const url = urlOf(input)
    const method = (
      init?.method ?? (typeof input === 'object' && !(input instanceof URL) ? input.method : 'GET')
    ).toUpperCase()
    const pathname = runtimePath(url)
    if (pathname === null || !handler.handles(method, pathname)) return underlying(input, init)
    const request = new Request(input, init)
    const body = Buffer.from(await request.arrayBuffer())
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined)
    const out = await handler.handle({
      method,
      pathname,
      header: (name) => request.headers.get(name) ?? undefined,
      body,
      signal,
    })
    const payload = Buffer.isBuffer(out.body)
      ? out.body
      : ReadableStream.from(signal ? abortable(out.body, signal) : out.body)
    return new Response(payload, { status: out.status, headers: out.headers })
  }

  fetchBatched.client = client
  fetchBatched.flush = async () => door.flush()
  fetchBatched.close = async () => {
    handler.close()
    await door.close()
  }
  fetchBatched.destroy = (o) => {
    handler.close()
    door.destroy(o)
  }
  fetchBatched.stats = () => door.stats()
  fetchBatched.metrics = () => door.metrics()
  fetchBatched.requestsByModel = () => door.requestsByModel()
  fetchBatched.on = (event, listener) => {
    door.on(event, listener)
    return fetchBatched
  }
  return fetchBatched
}

module.exports = { batchFetch, runtimeHosts }
