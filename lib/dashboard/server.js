'use strict'
// The HTTP server of `bedrock-batch-bridge dashboard`: the dashboard page of a store read from
// beside its processes (`/_bridge/`, `/_bridge/dashboard.json`, `/_bridge/jobs/<id>`,
// `/_bridge/assets/*`) and its metrics (`/_bridge/metrics`). Read only: it takes no call and holds
// no lock. The access rule is serve's: open on loopback; `auth` (SigV4-signed requests) or
// `apiKeys` (`Authorization: Bearer KEY` or `x-api-key: KEY`) checked whenever given, and one of
// them needed beyond loopback.

const http = require('node:http')
const { Dashboard } = require('./index.js')
const { StoreSource } = require('./store-source.js')
const { CONTENT_TYPE, storeExposition } = require('../metrics.js')
const { isLoopback, keyPair } = require('../server.js')
const { apiKeyList, keyChecker } = require('../wires/auth.js')

/** A request's headers as `[name, value]` pairs, for the signature check. */
function headerPairs(req) {
  const pairs = []
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) pairs.push([name, v])
    else if (value !== undefined) pairs.push([name, String(value)])
  }
  return pairs
}

/**
 * The access check: `check(req)` is undefined when the request may pass, else `{ status, message }`.
 * With credentials of both kinds, either one lets a request pass.
 */
function accessCheck({ auth, apiKeys, region }) {
  const keys = auth.map(keyPair)
  const checkKey = apiKeys.length ? keyChecker(apiKeys) : null
  if (keys.length === 0 && !checkKey) return () => undefined
  return (req) => {
    const header = (name) => {
      const v = req.headers[name]
      return Array.isArray(v) ? v.join(', ') : v
    }
    if (checkKey?.(header).ok) return undefined
    if (keys.length && header('authorization')?.startsWith('AWS4-')) {
      const native = require('../../binding.js')
      const refused = native.verifySignature(
        keys,
        region,
        req.method,
        `http://${req.headers.host ?? ''}${req.url}`,
        headerPairs(req),
        Buffer.alloc(0),
      )
      if (!refused) return undefined
      return { status: refused.status, message: `${refused.name}: ${refused.message}` }
    }
    return {
      status: 403,
      message: `This dashboard needs ${checkKey ? 'an API key ("Authorization: Bearer KEY" or "x-api-key: KEY")' : ''}${checkKey && keys.length ? ' or ' : ''}${keys.length ? 'a SigV4-signed request' : ''}.`,
    }
  }
}

function text(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers })
  res.end(body)
}

/**
 * Starts the dashboard of `reader` (a NativeStoreReader; `kind`: 'postgres' or 'sqlite'):
 * `{ host = '127.0.0.1', port = 0, auth = [], apiKeys = [], region, intervalMs, commands }`.
 * The store is read once before it listens (a store that cannot be read is reported on the page,
 * not thrown). Resolves to `{ url, source, stop() }`.
 */
async function startDashboard(reader, options) {
  const { kind, host = '127.0.0.1', port = 0, auth = [], apiKeys = [], region, intervalMs, commands } = options
  const keys = apiKeyList(apiKeys)
  if (!isLoopback(host) && auth.length === 0 && keys.length === 0)
    throw new TypeError(
      `the dashboard listens on ${host}, beyond this machine: give --auth ACCESS_KEY_ID:SECRET_ACCESS_KEY (SigV4-signed requests) or --api-key KEY ("Authorization: Bearer KEY")`,
    )
  const check = accessCheck({ auth, apiKeys: keys, region })
  const source = await new StoreSource(reader, { kind, intervalMs, commands }).start()
  const dashboard = new Dashboard(source, { scripts: ['store-view.js'], pollMs: Math.min(intervalMs ?? 5000, 5000) })
  const server = http.createServer(async (req, res) => {
    const [pathname] = req.url.split('?')
    const refused = check(req)
    if (refused) return text(res, refused.status, `${refused.message}\n`)
    if (dashboard.handles(pathname)) {
      let out
      try {
        out = await dashboard.handle(req.method, pathname)
      } catch (err) {
        return text(res, 500, `The dashboard failed: ${err?.name ?? 'Error'}\n`)
      }
      res.writeHead(out.status, out.headers)
      return res.end(req.method === 'HEAD' ? undefined : out.body)
    }
    if (pathname === '/_bridge/metrics' && (req.method === 'GET' || req.method === 'HEAD'))
      return text(res, 200, storeExposition(source.snapshot()), { 'content-type': CONTENT_TYPE })
    if (pathname === '/') return text(res, 308, '', { location: '/_bridge/' })
    return text(res, 404, 'Not found: the dashboard is at /_bridge/\n')
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${shown}:${address.port}`
  const stop = () =>
    new Promise((resolve) => {
      source.close()
      server.close(resolve)
      server.closeAllConnections()
    })
  return { url, source, stop }
}

module.exports = { startDashboard }
