'use strict'
// The server of `bedrock-batch-bridge serve`: the Bedrock runtime wire over HTTP/1.1 and cleartext
// HTTP/2 on one port, so any AWS SDK pointed at it (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`) gets batch
// prices. Runtime calls go to the wire handler; `GET /_bridge/stats` answers `stats()` as JSON,
// `GET /_bridge/plan` a dry run's `plan()`, and `GET /_bridge/` the dashboard page (lib/dashboard/).

const http = require('node:http')
const http2 = require('node:http2')
const net = require('node:net')
const os = require('node:os')
const native = require('../binding.js')
const { clientOver } = require('./client.js')
const { Door } = require('./door.js')
const { Dashboard } = require('./dashboard/index.js')
const { Recorder } = require('./dashboard/recorder.js')
const { CONTENT_TYPE } = require('./metrics.js')
const { WireHandler, errorResponse, refusal } = require('./wire.js')
const { apiKeyList } = require('./wires/auth.js')
const { WiresHandler, modelMapOf } = require('./wires/handler.js')
const { MemoryObjects } = require('./wires/objects.js')

/** The first bytes of every HTTP/2 connection with prior knowledge (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/** How long a drained stop waits for the last answers to be written before it closes connections anyway. */
const FLUSH_GRACE_MS = 10_000

/** Whether a host name or address is the loopback interface. */
function isLoopback(host) {
  if (host === 'localhost' || host === '::1') return true
  return net.isIPv4(host) && host.startsWith('127.')
}

/** `ACCESS_KEY_ID:SECRET_ACCESS_KEY` as a key pair; a TypeError naming what is wrong. */
function keyPair(text) {
  if (
    typeof text === 'object' &&
    text !== null &&
    typeof text.accessKeyId === 'string' &&
    typeof text.secretAccessKey === 'string'
  ) {
    return { accessKeyId: text.accessKeyId, secretAccessKey: text.secretAccessKey }
  }
  const i = typeof text === 'string' ? text.indexOf(':') : -1
  if (i <= 0 || i === text.length - 1)
    throw new TypeError('auth entries are ACCESS_KEY_ID:SECRET_ACCESS_KEY (or { accessKeyId, secretAccessKey })')
  return { accessKeyId: text.slice(0, i), secretAccessKey: text.slice(i + 1) }
}

/** A request's headers as `[name, value]` pairs (names in lower case), with `host` for HTTP/2. */
function headerPairs(req) {
  const pairs = []
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) pairs.push([name, v])
    else if (value !== undefined) pairs.push([name, String(value)])
  }
  if (req.headers.host === undefined && req.headers[':authority'] !== undefined)
    pairs.push(['host', String(req.headers[':authority'])])
  return pairs
}

async function readBody(req) {
  const chunks = []
  for await (const c of req) chunks.push(c)
  return Buffer.concat(chunks)
}

/** Writes a handler's answer; a stream stops when the caller goes away. */
async function write(res, out) {
  res.writeHead(out.status, out.headers)
  if (Buffer.isBuffer(out.body)) {
    res.end(out.body)
    return
  }
  // A stream's head goes at once (an event stream may wait long for its first event).
  if (typeof res.flushHeaders === 'function') res.flushHeaders()
  for await (const frame of out.body) {
    if (res.destroyed) return
    if (!res.write(frame))
      await new Promise((resolve) => (res.destroyed ? resolve() : res.once('drain', resolve).once('close', resolve)))
  }
  res.end()
}

/** A JSON answer of 200. */
function json(value) {
  return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(value)) }
}

/**
 * `GET /_bridge/plan`: a dry run's plan as JSON (the calls it held then end with DryRunException),
 * or the AWS error shape of why not (ValidationException when the server is not a dry run).
 */
async function planResponse(door) {
  try {
    return json(await door.plan())
  } catch (err) {
    return errorResponse(err)
  }
}

/**
 * `GET /_bridge/metrics`: the door's exposition; with a PostgreSQL store, the gauge of the group's
 * member processes too (read as the dashboard reads them: at most once a second).
 */
async function metricsResponse(door, recorder) {
  const group = door.stats().store?.kind === 'postgres' ? await recorder.groupMembers() : undefined
  // Left out when it cannot be read (the client is closing): not a wrong zero.
  const load = await door.requestsByModel().catch(() => undefined)
  return { status: 200, headers: { 'content-type': CONTENT_TYPE }, body: Buffer.from(door.metrics(group, load)) }
}

/**
 * Starts a server: `{ host = '127.0.0.1', port = 0, auth = [], apiKeys = [], modelMap = {},
 * ignoreClientTimeout = false, ...clientOptions }`. The Bedrock wire checks `auth` (key pairs
 * whose SigV4 signatures are checked); the OpenAI and Anthropic wires (/v1/...) check `apiKeys`
 * whenever there are any. Binding to anything but loopback needs one or the other, else it throws;
 * there, a wire without its own credentials refuses every call. Resolves to `{ url, port, host,
 * client, stop({ drain }) }`.
 */
async function startServer(options = {}) {
  const {
    host = '127.0.0.1',
    port = 0,
    auth = [],
    apiKeys = [],
    modelMap,
    ignoreClientTimeout = false,
    wireKeepAliveMs,
    ...clientOptions
  } = options
  const keys = (Array.isArray(auth) ? auth : [auth]).map(keyPair)
  const apiKeysList = apiKeyList(apiKeys)
  const local = isLoopback(host)
  if (!local && keys.length === 0 && apiKeysList.length === 0) {
    throw new TypeError(
      `serve listens on ${host}, beyond this machine: give the callers' credentials with --auth ACCESS_KEY_ID:SECRET_ACCESS_KEY (or BEDROCK_BATCH_SERVE_AUTH, or "auth" in the config file) so their signatures are checked, or API keys for the OpenAI and Anthropic wires with --api-key KEY (or BEDROCK_BATCH_SERVE_API_KEYS, or "apiKeys")`,
    )
  }
  const door = new Door(clientOptions)
  const client = clientOver(door)
  const region = door.config.region
  const handler = new WireHandler(door)
  // The Batch APIs' files and batches: in the journal or the PostgreSQL store, else in memory.
  let objects
  try {
    objects = (await door.storeObjects()) ?? new MemoryObjects()
  } catch (err) {
    door.destroy()
    throw err
  }
  const wires = new WiresHandler(door, {
    objects,
    apiKeys: apiKeysList,
    closed: !local && apiKeysList.length === 0,
    modelMap: modelMapOf(modelMap),
    clientTimeoutDeadline: !ignoreClientTimeout,
    ...(wireKeepAliveMs ? { keepAliveMs: wireKeepAliveMs } : {}),
  })
  // The batches a previous process (or another of the group) left running: sent again, joining their records.
  try {
    await wires.takeUp()
  } catch (err) {
    wires.close()
    door.destroy()
    throw err
  }
  // The page at /_bridge/ and what it polls (lib/dashboard/).
  const recorder = new Recorder(door)
  const dashboard = new Dashboard(recorder)
  // Beyond loopback without --auth, the Bedrock wire (and /_bridge) takes no calls.
  const bedrockClosed = !local && keys.length === 0
  let accepting = true

  const onRequest = async (req, res) => {
    try {
      const [pathname] = req.url.split('?')
      if (!accepting) return await write(res, refusal(503, 'ServiceUnavailableException', 'The server is stopping.'))
      const body = await readBody(req)
      if (wires.handles(pathname)) {
        const header = (name) => {
          const v = req.headers[name]
          return Array.isArray(v) ? v.join(', ') : v
        }
        const query = new URLSearchParams(req.url.slice(pathname.length + 1))
        return await write(res, await wires.handle({ method: req.method, pathname, query, header, body }))
      }
      if (bedrockClosed)
        return await write(
          res,
          refusal(
            403,
            'AccessDeniedException',
            'This server listens beyond loopback without --auth: the Bedrock wire takes no calls (give --auth ACCESS_KEY_ID:SECRET_ACCESS_KEY).',
          ),
        )
      if (keys.length) {
        const authority = req.headers[':authority'] ?? req.headers.host ?? ''
        const refused = native.verifySignature(
          keys,
          region,
          req.method,
          `http://${authority}${req.url}`,
          headerPairs(req),
          body,
        )
        if (refused) return await write(res, refusal(refused.status, refused.name, refused.message))
      }
      if (dashboard.handles(pathname)) return await write(res, await dashboard.handle(req.method, pathname))
      if (req.method === 'GET' && pathname === '/_bridge/stats') {
        return await write(res, json(door.stats()))
      }
      if (req.method === 'GET' && pathname === '/_bridge/metrics')
        return await write(res, await metricsResponse(door, recorder))
      if (req.method === 'GET' && pathname === '/_bridge/plan') return await write(res, await planResponse(door))
      const out = await handler.handle({ method: req.method, pathname, header: (name) => req.headers[name], body })
      if (!out)
        return await write(
          res,
          refusal(404, 'UnknownOperationException', `No Bedrock runtime operation at ${req.method} ${pathname}.`),
        )
      await write(res, out)
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ message: `The request could not be handled: ${err?.message ?? err}` }))
    }
  }

  // The requests being answered, for a drained stop to wait on.
  const answering = new Set()
  const track = (req, res) => {
    const p = onRequest(req, res)
    answering.add(p)
    p.finally(() => answering.delete(p))
  }
  const h1 = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 65_000 }, track)
  const h2 = http2.createServer({}, track)
  const sessions = new Set()
  h2.on('session', (session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  })
  // One port for both: a connection that opens with HTTP/2's preface goes to the HTTP/2 server.
  const sockets = new Set()
  const h2Sockets = new WeakSet()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.once('readable', function route() {
      const head = socket.read(H2_PREFACE.length) ?? socket.read()
      if (head === null) return socket.once('readable', route)
      socket.unshift(head)
      const target =
        head.length >= 3 &&
        H2_PREFACE.subarray(0, Math.min(head.length, H2_PREFACE.length)).equals(head.subarray(0, H2_PREFACE.length))
          ? h2
          : h1
      if (target === h2) h2Sockets.add(socket)
      target.emit('connection', socket)
    })
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  // Listening on every interface: callers elsewhere reach it by this machine's name.
  const unspecified = address.address === '0.0.0.0' || address.address === '::'
  const shown = unspecified ? os.hostname() : address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${shown}:${address.port}`

  /**
   * After the jobs drained: waits for the answers being written, then ends each connection once its
   * bytes are out (HTTP/2 sends its frames on a later turn of the event loop: destroying the sockets
   * at once loses them). At most FLUSH_GRACE_MS.
   */
  async function closeGracefully() {
    let timer
    const grace = new Promise((resolve) => {
      timer = setTimeout(resolve, FLUSH_GRACE_MS)
    })
    const flushed = (async () => {
      await Promise.allSettled([...answering])
      for (const session of sessions) session.close()
      for (const socket of sockets) if (!h2Sockets.has(socket)) socket.end()
      await Promise.all(
        [...sockets].map((s) =>
          s.writableFinished || s.destroyed
            ? null
            : new Promise((resolve) => s.once('finish', resolve).once('close', resolve)),
        ),
      )
    })()
    await Promise.race([flushed, grace])
    clearTimeout(timer)
  }

  /** Stops taking calls; with `drain`, waits for running jobs and the answers' delivery; otherwise leaves them to the journal. */
  async function stop({ drain = false } = {}) {
    accepting = false
    server.close()
    if (drain) {
      await door.close()
      await closeGracefully()
    } else {
      // First: the batches' lines failing as the door is destroyed must not end them.
      wires.close()
      door.destroy()
    }
    handler.close()
    wires.close()
    dashboard.close()
    for (const s of sockets) s.destroy()
    h1.close()
    h2.close()
  }
  return { url, host: address.address, port: address.port, client, stop }
}

module.exports = { startServer, isLoopback, keyPair }
