'use strict'
// The public JavaScript surface of bedrock-batch-bridge, over the generated napi loader (binding.js).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const native = require('./binding.js')

// ===== output body: the SDK's Uint8ArrayBlobAdapter shape =====

/** A Uint8Array with `transformToString(encoding?)`, as the AWS SDK returns bodies. */
class Uint8ArrayBlobAdapter extends Uint8Array {
  static fromString(source, encoding = 'utf-8') {
    const buf = encoding === 'base64' ? Buffer.from(source, 'base64') : Buffer.from(source, 'utf-8')
    return Uint8ArrayBlobAdapter.mutate(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength))
  }
  static mutate(source) {
    Object.setPrototypeOf(source, Uint8ArrayBlobAdapter.prototype)
    return source
  }
  transformToString(encoding = 'utf-8') {
    const buf = Buffer.from(this.buffer, this.byteOffset, this.byteLength)
    return encoding === 'base64' ? buf.toString('base64') : buf.toString('utf-8')
  }
}

// ===== errors: one place builds every exception =====

const CLIENT_FAULT = 'client'
let sdkRuntime
function sdkExceptions() {
  if (sdkRuntime === undefined) {
    try {
      sdkRuntime = require('@aws-sdk/client-bedrock-runtime')
    } catch {
      sdkRuntime = null
    }
  }
  return sdkRuntime
}

/**
 * Base of this package's own exceptions: the SDK's fields, as own enumerable keys in the order the
 * SDK's deserialized exceptions have them (`$fault, $retryable, $metadata, name, message`).
 */
class BedrockBatchBridgeException extends Error {
  constructor(opts) {
    super()
    this.$fault = opts.$fault || CLIENT_FAULT
    this.$retryable = undefined
    this.$metadata = opts.$metadata || {}
    this.name = opts.name
    if (opts.message !== undefined) this.message = opts.message
    Object.setPrototypeOf(this, new.target.prototype)
  }
}
const OWN = ['BatchJobFailedException', 'RecordMissingException', 'ClientClosedException', 'JournalLockedException', 'JournalCorruptedException']
const exceptionClasses = {}
for (const name of [
  ...OWN,
  'ValidationException',
  'AccessDeniedException',
  'ResourceNotFoundException',
  'ModelTimeoutException',
  'ModelErrorException',
  'ModelNotReadyException',
  'ThrottlingException',
  'ServiceQuotaExceededException',
  'InternalServerException',
  'ServiceUnavailableException',
  'ConflictException',
]) {
  exceptionClasses[name] = {
    [name]: class extends BedrockBatchBridgeException {
      constructor(opts) {
        super({ ...opts, name })
      }
    },
  }[name]
}

/**
 * Builds the exception for an engine error: the app's own SDK class where it has one (so
 * `instanceof` works), else ours with the same name and fields.
 */
function toException(e) {
  const $metadata = {
    httpStatusCode: e.httpStatusCode ?? undefined,
    requestId: e.requestId ?? (e.jobArn ? `${e.jobArn}${e.recordId ? `#${e.recordId}` : ''}` : undefined),
    extendedRequestId: undefined,
    cfId: undefined,
    attempts: e.attempts || 1,
    totalRetryDelay: 0,
  }
  const opts = { message: e.message, $fault: e.fault || CLIENT_FAULT, $metadata }
  const sdk = OWN.includes(e.name) ? null : sdkExceptions()
  let err
  if (sdk && typeof sdk[e.name] === 'function') {
    // As the SDK builds a service error: constructed without a message, which is then assigned
    // (an own enumerable key), and `$response` hidden (the SDK hides the HTTP response there).
    err = new sdk[e.name]({ $fault: opts.$fault, $metadata })
    Object.defineProperty(err, '$response', { value: undefined, enumerable: false, writable: true, configurable: true })
    err.message = opts.message ?? 'UnknownError'
  } else if (exceptionClasses[e.name]) {
    err = new exceptionClasses[e.name](opts)
  } else {
    err = new BedrockBatchBridgeException({ ...opts, name: e.name || 'UnknownError' })
  }
  if (e.jobArn) err.jobArn = e.jobArn
  if (e.recordId) err.recordId = e.recordId
  if (e.status) err.status = e.status
  return err
}

/** The HTTP status the service answers each exception with (for errors raised before any call). */
const STATUS_OF = {
  ValidationException: 400,
  ServiceQuotaExceededException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ModelTimeoutException: 408,
  ModelErrorException: 424,
  ThrottlingException: 429,
  InternalServerException: 500,
  ServiceUnavailableException: 503,
}

/** Native sync errors carry `Name: message`; give them their AWS-style class. */
function fromNative(err) {
  const m = /^([A-Za-z]+(?:Exception|Error)): ([\s\S]*)$/.exec(err?.message)
  if (!m) return err
  const status = STATUS_OF[m[1]]
  return toException({ name: m[1], message: m[2], fault: status >= 500 ? 'server' : CLIENT_FAULT, httpStatusCode: status })
}

/** The SDK's abort error (`name: "AbortError"`, `"Request aborted"`); the signal's reason is its (hidden) `cause`. */
function abortError(signal) {
  const reason = signal?.reason
  const err = reason === undefined ? new Error('Request aborted') : new Error('Request aborted', { cause: reason })
  err.name = 'AbortError'
  return err
}

// ===== commands =====

/** Our InvokeModelCommand; a real one from @aws-sdk/client-bedrock-runtime works as well. */
class InvokeModelCommand {
  constructor(input) {
    this.input = input ?? {}
  }
}

function isInvokeModel(command) {
  if (command instanceof InvokeModelCommand) return true
  if (Array.isArray(command?.schema) && command.schema[2] === 'InvokeModel') return true
  return command?.constructor?.name === 'InvokeModelCommand'
}

/** The record id the engine gives request `id` (`R` and ten digits). */
function recordId(id) {
  return `R${String(id).padStart(10, '0')}`
}

const INVOKE_OPTION_KEYS = [
  'contentType',
  'accept',
  'trace',
  'guardrailIdentifier',
  'guardrailVersion',
  'performanceConfigLatency',
  'serviceTier',
  'requestMetadata',
]

/** The InvokeModel options of an input, or undefined when none is set (the common case). */
function invokeOptions(input) {
  let out
  for (const k of INVOKE_OPTION_KEYS) {
    if (input[k] !== undefined && input[k] !== null) {
      out = out || {}
      out[k] = input[k]
    }
  }
  return out
}

/** A body the native side accepts: a string as is (one copy less), else a Buffer view. */
function bodyBytes(body) {
  if (typeof body === 'string') return body
  if (Buffer.isBuffer(body)) return body
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (body instanceof ArrayBuffer) return Buffer.from(body)
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  return null
}

// ===== configuration =====

function envNumber(name) {
  const v = process.env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  if (!Number.isFinite(n)) throw new TypeError(`${name} must be a number, got ${JSON.stringify(v)}`)
  return n
}

/**
 * The sections of an AWS shared config or credentials file: `{ [section]: { key: value } }`.
 * Comments (`#`, `;`) are dropped, and so are nested settings (`s3 =` followed by indented lines),
 * which belong to a service, not to the profile.
 */
function parseIni(text) {
  const sections = {}
  let section = null
  let nested = false
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.split(/(?:^|\s)[#;]/)[0].trim()
    if (line === '') continue
    if (line.startsWith('[') && line.endsWith(']')) {
      section = line.slice(1, -1).trim().replace(/\s+/g, ' ')
      sections[section] = sections[section] || {}
      nested = false
      continue
    }
    const eq = line.indexOf('=')
    if (section === null || eq <= 0) continue
    const indented = /^\s/.test(raw)
    if (nested && indented) continue
    nested = false
    const key = line.slice(0, eq).trim()
    const value = line.slice(eq + 1).trim()
    if (value === '') nested = true
    else sections[section][key] = value
  }
  return sections
}

function readIni(file) {
  try {
    return parseIni(fs.readFileSync(file, 'utf8'))
  } catch {
    return {}
  }
}

/**
 * The `region` of the AWS profile (`AWS_PROFILE`, else `default`), as the AWS SDKs read it: the
 * credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else ~/.aws/credentials, section `[name]`) wins
 * over the config file (`AWS_CONFIG_FILE`, else ~/.aws/config, section `[profile name]`, or
 * `[default]`).
 */
function profileRegion() {
  const env = process.env
  const profile = env.AWS_PROFILE || 'default'
  const home = os.homedir()
  const credentials = readIni(env.AWS_SHARED_CREDENTIALS_FILE || path.join(home, '.aws', 'credentials'))
  const config = readIni(env.AWS_CONFIG_FILE || path.join(home, '.aws', 'config'))
  const fromConfig = config[`profile ${profile}`] || (profile === 'default' ? config.default : undefined)
  return credentials[profile]?.region || fromConfig?.region
}

const DEFAULT_REGION = 'us-west-2'

/** Region: the option, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else us-west-2. */
function resolveRegion(options) {
  return options.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || profileRegion() || DEFAULT_REGION
}

function resolveConfig(options = {}) {
  const batch = {
    s3InputUri: process.env.BEDROCK_BATCH_S3_INPUT_URI,
    s3OutputUri: process.env.BEDROCK_BATCH_S3_OUTPUT_URI,
    roleArn: process.env.BEDROCK_BATCH_ROLE_ARN,
    maxBatchSize: envNumber('BEDROCK_BATCH_MAX_BATCH_SIZE'),
    batchTimeout: envNumber('BEDROCK_BATCH_TIMEOUT'),
    ...Object.fromEntries(Object.entries(options.batch || {}).filter(([, v]) => v !== undefined)),
  }
  return {
    region: resolveRegion(options),
    modelId: options.modelId,
    mode: options.mode || process.env.BEDROCK_BATCH_MODE || 'batch',
    batch,
    direct: { maxConcurrency: 32, ...(options.direct || {}) },
    openai: options.openai ? { maxConcurrency: 32, timeout: 600, ...options.openai } : undefined,
    endpoints: { ...(options.endpoints || {}) },
    credentials: options.credentials,
    journal: options.journal ? { retentionDays: 7, ...options.journal } : undefined,
  }
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
      throw new TypeError('the credentials function must return { accessKeyId, secretAccessKey, sessionToken?, expiration? }')
    }
    const e = c.expiration
    const expiration = e instanceof Date ? e.getTime() : typeof e === 'number' ? e : typeof e === 'string' ? Date.parse(e) : undefined
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken || undefined,
      expiration: Number.isFinite(expiration) ? expiration : undefined,
    }
  }
}

/** Checks the journal option; returns what the engine takes. */
function journalOptions(journal, mode) {
  if (!journal) return null
  const bad = (message) => toException({ name: 'ValidationException', message, httpStatusCode: 400 })
  if (mode !== 'batch') throw bad(`journal: the journal serves batch mode only (mode is ${JSON.stringify(mode)})`)
  if (typeof journal.path !== 'string' || journal.path === '')
    throw bad('journal.path must be the path of the journal file (e.g. "./.bedrock-batch/journal.db")')
  const days = journal.retentionDays
  if (typeof days !== 'number' || !Number.isFinite(days) || days < 0) throw bad(`journal.retentionDays must be a number of days >= 0, got ${days}`)
  return { path: journal.path, retentionDays: days }
}

// ===== the client =====

const PROGRESS_INTERVAL_MS = 250

/**
 * What batch saved against on-demand: batch costs half the on-demand price, so the saving is half
 * of what the jobs' tokens would have cost on-demand, at the given per-model prices.
 */
function estimatedSaving(jobs, pricing) {
  let usd = 0
  for (const j of jobs) {
    const p = pricing[j.modelId]
    if (!p) continue
    usd += ((j.inputTokens / 1000) * (p.inputPer1kTokens || 0) + (j.outputTokens / 1000) * (p.outputPer1kTokens || 0)) * 0.5
  }
  return Math.round(usd * 1e6) / 1e6
}

/** A pending entry is its resolve function, or `{ resolve, signal, onAbort }` with an AbortSignal. */
function resolvePending(p, value) {
  ;(typeof p === 'function' ? p : p.resolve)(value)
}

function rejectPending(p, err) {
  resolvePending(p, Promise.reject(err))
}

/**
 * A drop-in for BedrockRuntimeClient whose InvokeModel calls run as Bedrock batch inference jobs.
 */
class BatchInferenceClient {
  constructor(options) {
    this._options = options || {}
    this._pending = new Map()
    this._engine = null
    this._keepAlive = null
    this._listeners = { job: new Set(), progress: new Set() }
    this._progressTimer = null
    this._closed = false
    // Options that configure a mode are checked now, so a mistake fails here, naming the option;
    // a client with none (configured later by setup() or the environment) starts at its first send.
    const o = this._options
    if (o.batch || o.mode || o.openai || o.direct || o.journal) this._ensureEngine()
  }

  /** The resolved configuration, as plain values. */
  get config() {
    return resolveConfig(this._options)
  }

  _ensureEngine() {
    if (this._engine) return this._engine
    const cfg = this.config
    if (!['batch', 'direct', 'openai'].includes(cfg.mode)) {
      throw new TypeError(`mode must be "batch", "direct" or "openai", got ${JSON.stringify(cfg.mode)}`)
    }
    if (cfg.mode === 'openai' && !cfg.openai?.model) {
      throw new TypeError('openai mode needs openai.model (a LiteLLM-style model string such as "hosted_vllm/Qwen/Qwen3-32B")')
    }
    const b = cfg.batch
    const creds = cfg.credentials
    const credentialsFn = typeof creds === 'function' ? credentialsCallback(creds) : null
    if (creds != null && !credentialsFn && (typeof creds.accessKeyId !== 'string' || typeof creds.secretAccessKey !== 'string')) {
      throw toException({
        name: 'ValidationException',
        message: 'credentials must be { accessKeyId, secretAccessKey, sessionToken? } or an async function returning them',
        httpStatusCode: 400,
      })
    }
    const aws = {
      region: cfg.region,
      accessKeyId: creds?.accessKeyId,
      secretAccessKey: creds?.secretAccessKey,
      sessionToken: creds?.sessionToken,
      bedrockEndpoint: cfg.endpoints.bedrock,
      bedrockRuntimeEndpoint: cfg.endpoints.bedrockRuntime,
      s3Endpoint: cfg.endpoints.s3,
    }
    const batch = {
      s3InputUri: b.s3InputUri ?? '',
      s3OutputUri: b.s3OutputUri ?? '',
      roleArn: b.roleArn ?? '',
      minBatchSize: b.minBatchSize,
      maxBatchSize: b.maxBatchSize,
      batchTimeout: b.batchTimeout,
      maxWait: b.maxWait,
      pollInterval: b.pollInterval,
      jobTimeoutHours: b.jobTimeoutHours,
      jobNamePrefix: b.jobNamePrefix,
      maxConcurrentJobs: b.maxConcurrentJobs,
      belowMinimum: b.belowMinimum,
      maxAttempts: b.maxAttempts,
      cleanup: b.cleanup,
      maxQueuedRequests: b.maxQueuedRequests,
      s3EncryptionKeyId: b.s3EncryptionKeyId,
      s3BucketOwner: b.s3BucketOwner,
      forcePathStyle: b.forcePathStyle,
      vpcConfig: b.vpcConfig,
      tags: b.tags && (Array.isArray(b.tags) ? b.tags : Object.entries(b.tags).map(([key, value]) => ({ key, value: String(value) }))),
    }
    try {
      this._engine = new native.NativeEngine(
        cfg.mode,
        aws,
        cfg.mode === 'batch' ? batch : null,
        cfg.direct,
        cfg.mode === 'openai' ? cfg.openai : null,
        journalOptions(cfg.journal, cfg.mode),
        (settled) => this._settle(settled),
        (job) => {
          // Job-level events only: never request bodies or credentials.
          const log = this._options.logger
          if (log && typeof log.info === 'function') log.info(`bedrock-batch-bridge: job ${job.jobName} (${job.jobArn}) ${job.status}`)
          this._emit('job', job)
          this._progress()
        },
        credentialsFn,
      )
    } catch (err) {
      throw fromNative(err)
    }
    return this._engine
  }

  /** Settles a packed chunk of results (see NativeSettleChunk in binding.d.ts). */
  _settle(chunk) {
    this._progress()
    const { ids, ends, data, jobArn } = chunk
    const errors = chunk.errors.length ? new Map(chunk.errors.map((e) => [e.index, e.error])) : null
    const extras = chunk.extras.length ? new Map(chunk.extras.map((e) => [e.index, e])) : null
    let start = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]
      const end = ends[i]
      const bodyStart = start
      start = end
      const p = this._pending.get(id)
      if (!p) continue
      this._forget(id, p)
      const error = errors?.get(i)
      if (error) {
        rejectPending(p, toException(error))
        continue
      }
      const extra = extras?.get(i)
      const arn = extra ? extra.jobArn : jobArn
      // Key for key as the SDK: the tier keys exist only when the service echoed them.
      // Each body owns its bytes, as the SDK's do (`body.buffer` holds this answer only, and a
      // kept body does not keep the whole chunk alive).
      const body = new Uint8ArrayBlobAdapter(end - bodyStart)
      body.set(data.subarray(bodyStart, end))
      const out = {
        body,
        contentType: extra ? extra.contentType : 'application/json',
      }
      if (extra && extra.performanceConfigLatency != null) out.performanceConfigLatency = extra.performanceConfigLatency
      if (extra && extra.serviceTier != null) out.serviceTier = extra.serviceTier
      out.$metadata = {
        httpStatusCode: 200,
        requestId: extra?.requestId ?? (arn ? `${arn}#${recordId(id)}` : undefined),
        extendedRequestId: undefined,
        cfId: undefined,
        attempts: extra?.attempts || 1,
        totalRetryDelay: 0,
      }
      resolvePending(p, out)
    }
  }

  _forget(id, p) {
    this._pending.delete(id)
    if (typeof p !== 'function') p.signal.removeEventListener('abort', p.onAbort)
    if (this._pending.size === 0 && this._keepAlive) {
      clearInterval(this._keepAlive)
      this._keepAlive = null
    }
  }

  /** Emits `progress` at most every 250 ms; the timer never keeps the process alive. */
  _progress() {
    if (this._listeners.progress.size === 0 || this._progressTimer) return
    this._progressTimer = setTimeout(() => {
      this._progressTimer = null
      if (this._engine) this._emit('progress', this.stats())
    }, PROGRESS_INTERVAL_MS)
    this._progressTimer.unref()
  }

  _emit(event, value) {
    for (const l of this._listeners[event] || []) {
      try {
        l(value)
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** `job`: one job entry on each status change; `progress`: `stats()` on changes, at most every 250 ms. */
  on(event, listener) {
    if (!this._listeners[event]) throw new TypeError(`unknown event ${JSON.stringify(event)}`)
    this._listeners[event].add(listener)
    return this
  }

  /** Sends a command: `send(cmd)`, `send(cmd, options)`, `send(cmd, cb)`, `send(cmd, options, cb)`. */
  send(command, optionsOrCb, cb) {
    const callback = typeof optionsOrCb === 'function' ? optionsOrCb : cb
    const options = typeof optionsOrCb === 'function' ? undefined : optionsOrCb
    const promise = this._send(command, options || {})
    if (typeof callback === 'function') {
      promise.then(
        (out) => callback(null, out),
        (err) => callback(err),
      )
      return undefined
    }
    return promise
  }

  _send(command, options) {
    if (!isInvokeModel(command)) {
      const name = command?.constructor?.name || typeof command
      return Promise.reject(new TypeError(`bedrock-batch-bridge handles InvokeModelCommand only; got ${name}`))
    }
    if (this._closed) {
      return Promise.reject(toException({ name: 'ClientClosedException', message: 'The client is closed: send() after close() or destroy() is rejected.' }))
    }
    const input = command.input || {}
    const signal = options.abortSignal
    if (signal?.aborted) return Promise.reject(abortError(signal))
    const modelId = this._modelFor(input)
    if (typeof modelId !== 'string' || modelId === '') {
      return Promise.reject(toException({ name: 'ValidationException', message: 'modelId is required (on the command or the client).', httpStatusCode: 400 }))
    }
    const body = bodyBytes(input.body)
    if (body === null) {
      return Promise.reject(
        toException({ name: 'ValidationException', message: 'body must be a string, Buffer, Uint8Array, ArrayBuffer or typed array.', httpStatusCode: 400 }),
      )
    }
    const key = options.idempotencyKey
    if (key !== undefined && (typeof key !== 'string' || key === '')) {
      return Promise.reject(toException({ name: 'ValidationException', message: 'idempotencyKey must be a non-empty string.', httpStatusCode: 400 }))
    }
    let id
    try {
      const engine = this._ensureEngine()
      id = engine.submit(modelId, body, invokeOptions(input), key)
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
    return new Promise((resolve) => {
      // A pending request costs one Map entry and its resolve function; rejecting resolves
      // with a rejected promise (a million may wait at once).
      let p = resolve
      if (signal) {
        p = { resolve, signal, onAbort: null }
        p.onAbort = () => {
          this._forget(id, p)
          this._engine.cancel(id)
          resolve(Promise.reject(abortError(signal)))
        }
        signal.addEventListener('abort', p.onAbort, { once: true })
      }
      this._pending.set(id, p)
      // Pending requests keep the process alive, as pending HTTP calls would.
      if (!this._keepAlive) this._keepAlive = setInterval(() => {}, 1 << 30)
    })
  }

  /** The model a request goes to: in openai mode a `bedrock/<id>` model string names it. */
  _modelFor(input) {
    if (!this._resolved) this._resolved = this.config
    const cfg = this._resolved
    if (cfg.mode === 'openai') {
      const m = cfg.openai.model
      return m.startsWith('bedrock/') ? m.slice('bedrock/'.length) : input.modelId || cfg.modelId || m
    }
    return input.modelId || cfg.modelId
  }

  /**
   * The Python SDK's form: `await client.setup({ modelId, s3InputUri, s3OutputUri, roleArn, region,
   * minBatchSize, maxBatchSize, batchTimeout, pollInterval, jobTimeoutHours, jobNamePrefix,
   * debugMode, litellmMode, litellmModel, litellmApiBase, endpoints, credentials })`, before the
   * first send. Times are in seconds; defaults are the seed's.
   */
  async setup(opts = {}) {
    if (this._engine) throw new TypeError('setup() must be called before the first send()')
    const known = [
      'modelId',
      's3InputUri',
      's3OutputUri',
      'roleArn',
      'region',
      'minBatchSize',
      'maxBatchSize',
      'batchTimeout',
      'pollInterval',
      'jobTimeoutHours',
      'jobNamePrefix',
      'debugMode',
      'litellmMode',
      'litellmModel',
      'litellmApiBase',
      'endpoints',
      'credentials',
      'journalPath',
    ]
    const unknown = Object.keys(opts).filter((k) => !known.includes(k))
    if (unknown.length) throw new TypeError(`unknown setup() option(s): ${unknown.join(', ')}`)
    if (opts.debugMode && opts.litellmMode) throw new TypeError('setup(): debugMode and litellmMode cannot both be set')
    if (opts.litellmMode && !opts.litellmModel) throw new TypeError('setup(): litellmMode needs litellmModel')
    const batch = {}
    for (const k of [
      's3InputUri',
      's3OutputUri',
      'roleArn',
      'minBatchSize',
      'maxBatchSize',
      'batchTimeout',
      'pollInterval',
      'jobTimeoutHours',
      'jobNamePrefix',
    ]) {
      if (opts[k] !== undefined) batch[k] = opts[k]
    }
    const next = {
      ...this._options,
      region: opts.region ?? this._options.region,
      modelId: opts.modelId ?? this._options.modelId,
      mode: opts.debugMode ? 'direct' : opts.litellmMode ? 'openai' : this._options.mode,
      batch: { ...(this._options.batch || {}), ...batch },
      endpoints: opts.endpoints ?? this._options.endpoints,
      credentials: opts.credentials ?? this._options.credentials,
      journal: opts.journalPath ? { ...(this._options.journal || {}), path: opts.journalPath } : this._options.journal,
    }
    if (opts.litellmMode) next.openai = { ...(this._options.openai || {}), model: opts.litellmModel, apiBase: opts.litellmApiBase || undefined }
    this._options = next
    this._resolved = null
    this._ensureEngine()
  }

  /** `invokeModel(args, options?)`, as the aggregated BedrockRuntime client has it. */
  invokeModel(args, optionsOrCb, cb) {
    return this.send(new InvokeModelCommand(args), optionsOrCb, cb)
  }

  /** Submits what is queued now. */
  async flush() {
    if (this._engine) this._engine.flush()
  }

  /** Flushes, waits for every job, then releases. Later sends reject with ClientClosedException. */
  async close() {
    this._closed = true
    if (this._engine) await this._engine.close()
  }

  /** Stops at once: every pending request rejects with ClientClosedException. */
  destroy(options) {
    this._closed = true
    if (this._engine) this._engine.destroy(Boolean(options?.stopJobs))
    for (const [id, p] of [...this._pending]) {
      this._forget(id, p)
      rejectPending(p, toException({ name: 'ClientClosedException', message: 'The client was destroyed before this request settled.' }))
    }
  }

  /** Counters: `{ queued, inFlight, padded, resubmitted, sentDirect, jobs, tokens: { input, output } }`. */
  stats() {
    if (!this._engine)
      return {
        queued: 0,
        inFlight: 0,
        padded: 0,
        resubmitted: 0,
        sentDirect: 0,
        jobs: [],
        tokens: { input: 0, output: 0 },
        ...(this._options.pricing ? { estimatedSavingUsd: 0 } : {}),
      }
    const s = this._engine.stats()
    const out = {
      queued: s.queued,
      inFlight: s.inFlight,
      padded: s.padded,
      resubmitted: s.resubmitted,
      sentDirect: s.sentDirect,
      jobs: s.jobs,
      tokens: { input: s.inputTokens, output: s.outputTokens },
    }
    const pricing = this._options.pricing
    if (pricing) out.estimatedSavingUsd = estimatedSaving(s.jobs, pricing)
    if (s.journal) out.journal = { path: s.journal.path, bytes: s.journal.bytes }
    return out
  }

  /**
   * The jobs of the journal (every job it remembers, from this process and earlier ones), or,
   * without a journal, this client's jobs: `{ jobArn, jobName, modelId, status, createdAt,
   * totalRecordCount, successRecordCount, errorRecordCount }`.
   */
  async jobs() {
    const engine = this._ensureEngine()
    const fromJournal = await engine.journalJobs().catch((err) => {
      throw fromNative(err)
    })
    if (fromJournal) return fromJournal.map((j) => ({ ...j, createdAt: new Date(j.createdAt) }))
    return engine.stats().jobs.map((j) => ({
      jobArn: j.jobArn,
      jobName: j.jobName,
      modelId: j.modelId,
      status: j.status,
      createdAt: undefined,
      totalRecordCount: j.totalRecordCount,
      successRecordCount: j.successRecordCount,
      errorRecordCount: j.errorRecordCount,
    }))
  }

  /**
   * The answers of one job from the journal, as an async iterable of `{ recordId,
   * idempotencyKey, output?: Uint8Array, error?: { name, message } }`, in record order.
   */
  async *results(jobArn, options = {}) {
    if (typeof jobArn !== 'string' || jobArn === '') throw new TypeError('results(jobArn): jobArn must be a job ARN string')
    const engine = this._ensureEngine()
    const pageSize = options.pageSize || 1000
    let after = null
    for (;;) {
      const page = await engine.journalResults(jobArn, after, pageSize).catch((err) => {
        throw fromNative(err)
      })
      for (const r of page) {
        const item = { recordId: r.recordId, idempotencyKey: r.idempotencyKey }
        if (r.output) item.output = new Uint8ArrayBlobAdapter(r.output.buffer, r.output.byteOffset, r.output.byteLength)
        else item.error = { name: r.errorName, message: r.errorMessage }
        yield item
      }
      if (page.length < pageSize) return
      after = page[page.length - 1].record
    }
  }
}

// ===== the plugin form =====

/**
 * Routes `InvokeModelCommand` of an existing `BedrockRuntimeClient` through the batch engine and
 * lets every other command through untouched:
 * `runtime.middlewareStack.use(batchPlugin({ client: runtime, batch: {...} }))`.
 * Region and credentials come from the host client (`options.client`) when the options lack them.
 * The returned object is also the handle for `flush()`, `close()`, `stats()` and `on()`.
 */
function batchPlugin(options = {}) {
  const { client: host, ...rest } = options
  // Started at the first request, once the host's region and credentials are known.
  const engine = new BatchInferenceClient()
  engine._options = rest
  let ready = null
  // The host's config holds async providers; resolve them once, before the first request.
  const prepare = () =>
    (ready =
      ready ||
      (async () => {
        if (!host?.config) return
        const cfg = host.config
        const patch = {}
        if (!rest.region && typeof cfg.region === 'function') patch.region = await cfg.region()
        // The host's own provider: the engine calls it again before its credentials expire.
        if (!rest.credentials && typeof cfg.credentials === 'function') patch.credentials = () => cfg.credentials()
        engine._options = { ...engine._options, ...patch }
        engine._resolved = null
      })())
  const middleware = (next, context) => async (args) => {
    if (context.commandName !== 'InvokeModelCommand') return next(args)
    await prepare()
    const output = await engine._send(new InvokeModelCommand(args.input), { abortSignal: context.abortSignal || args.abortSignal })
    return { output, response: undefined }
  }
  return {
    applyToStack(stack) {
      stack.add(middleware, { step: 'initialize', name: 'bedrockBatchBridge', priority: 'high', override: true })
    },
    flush: () => engine.flush(),
    close: () => engine.close(),
    destroy: (o) => engine.destroy(o),
    stats: () => engine.stats(),
    on(event, listener) {
      engine.on(event, listener)
      return this
    },
  }
}

// ===== the emulator =====

/**
 * Starts the local Bedrock batch emulator on 127.0.0.1.
 * @param {import('./index').EmulatorOptions} [options]
 * @returns {Promise<import('./index').RunningEmulator>}
 */
async function startEmulator(options) {
  let handle
  try {
    handle = await native.startEmulatorNative(options ?? null)
  } catch (err) {
    throw fromNative(err)
  }
  const endpoints = handle.endpoints
  return {
    region: handle.region,
    credentials: { accessKeyId: handle.accessKeyId, secretAccessKey: handle.secretAccessKey },
    endpoints: {
      bedrock: endpoints.bedrock,
      bedrockRuntime: endpoints.bedrockRuntime,
      s3: endpoints.s3,
      openai: endpoints.openai,
    },
    bucket: handle.bucket,
    stop: () => handle.stop(),
  }
}

module.exports = {
  BatchInferenceClient,
  BedrockRuntimeClient: BatchInferenceClient,
  InvokeModelCommand,
  Uint8ArrayBlobAdapter,
  BedrockBatchBridgeException,
  ...exceptionClasses,
  batchPlugin,
  startEmulator,
}
