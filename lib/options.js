'use strict'
// The user's options as the engine takes them: plain data only. Functions (a credentials
// function, a logger) stay on this side; the engine resolves, defaults and checks everything else
// (see crates/core/src/config.rs). Also the seed's `setup()` options, translated to the client's.

/** Whether a value is a plain object (not a class instance such as an SDK request handler). */
function isPlain(v) {
  if (v === null || typeof v !== 'object') return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

/** A copy of `value` with only data in it: functions and undefined left out, class instances as null. */
function plain(value, depth = 0) {
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined
  if (typeof value === 'bigint') return Number(value)
  if (value === null || typeof value !== 'object') return value
  if (depth > 8) return null
  if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1) ?? null)
  if (!isPlain(value)) return null
  const out = {}
  for (const [k, v] of Object.entries(value)) {
    const p = plain(v, depth + 1)
    if (p !== undefined) out[k] = p
  }
  return out
}

/** The options for the engine: `{ options, credentials }` (the credentials function, if any). */
function engineOptions(options) {
  const credentials = typeof options.credentials === 'function' ? options.credentials : null
  const data =
    plain({
      ...options,
      credentials: credentials ? undefined : options.credentials,
      logger: undefined,
      client: undefined,
    }) || {}
  return { options: data, credentials }
}

/**
 * Wraps an application's credentials function (`async () => ({ accessKeyId, secretAccessKey,
 * sessionToken?, expiration? })`, as the AWS SDK takes) for the engine, which calls it again
 * shortly before the credentials it returned expire.
 */
function credentialsCallback(fn) {
  return async () => {
    const c = await fn()
    if (!c || typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') {
      throw new TypeError(
        'the credentials function must return { accessKeyId, secretAccessKey, sessionToken?, expiration? }',
      )
    }
    const e = c.expiration
    const expiration =
      e instanceof Date ? e.getTime() : typeof e === 'number' ? e : typeof e === 'string' ? Date.parse(e) : undefined
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken || undefined,
      expiration: Number.isFinite(expiration) ? expiration : undefined,
    }
  }
}

/**
 * The seed's `setup()` options (SetupOptions in index.d.ts), each with where it goes in the
 * client's options: `top` (the same key), `batch` (`batch.<key>`), or read by `withSetup` itself.
 */
const SETUP = {
  modelId: 'top',
  region: 'top',
  endpoints: 'top',
  credentials: 'top',
  s3InputUri: 'batch',
  s3OutputUri: 'batch',
  roleArn: 'batch',
  minBatchSize: 'batch',
  maxBatchSize: 'batch',
  batchTimeout: 'batch',
  pollInterval: 'batch',
  jobTimeoutHours: 'batch',
  jobNamePrefix: 'batch',
  debugMode: 'mode',
  litellmMode: 'mode',
  litellmModel: 'openai',
  litellmApiBase: 'openai',
  journalPath: 'journal',
}

/** The client's options after the seed's `setup(opts)` on top of `options`. */
function withSetup(options, opts) {
  const unknown = Object.keys(opts).filter((k) => !Object.hasOwn(SETUP, k))
  if (unknown.length) throw new TypeError(`unknown setup() option(s): ${unknown.join(', ')}`)
  if (opts.debugMode && opts.litellmMode) throw new TypeError('setup(): debugMode and litellmMode cannot both be set')
  if (opts.litellmMode && !opts.litellmModel) throw new TypeError('setup(): litellmMode needs litellmModel')
  const next = { ...options, batch: { ...(options.batch || {}) } }
  for (const [k, where] of Object.entries(SETUP)) {
    if (where === 'top') next[k] = opts[k] ?? options[k]
    else if (where === 'batch' && opts[k] !== undefined) next.batch[k] = opts[k]
  }
  next.mode = opts.debugMode ? 'direct' : opts.litellmMode ? 'openai' : options.mode
  next.journal = opts.journalPath ? { ...(options.journal || {}), path: opts.journalPath } : options.journal
  if (opts.litellmMode)
    next.openai = { ...(options.openai || {}), model: opts.litellmModel, apiBase: opts.litellmApiBase || undefined }
  return next
}

module.exports = { engineOptions, credentialsCallback, withSetup, plain }
