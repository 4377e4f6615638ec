'use strict'
// BatchInferenceClient: a drop-in for BedrockRuntimeClient whose InvokeModel calls run as Bedrock
// batch inference jobs. It keeps the callers' Promises and hands requests to the engine through
// the submit buffer; everything about the requests themselves (defaults, checks, batching) is
// the engine's.

const native = require('../binding.js')
const { Uint8ArrayBlobAdapter, bodyBytes } = require('./body.js')
const { InvokeModelCommand, OPERATION_CODES, operationOf, requestOptions } = require('./commands.js')
const { converseBody, converseOutput } = require('./converse.js')
const { abortError, call, exception, fromNative, toException } = require('./errors.js')
const { credentialsCallback, engineOptions, withSetup } = require('./options.js')
const { EventStream, eventShape } = require('./stream.js')
const { SubmitBuffer } = require('./submit-buffer.js')

const PROGRESS_INTERVAL_MS = 250

// How the engine writes a batch answer's request id (`<jobArn>#<recordId>`; src/settle.rs).
const FORMAT = native.requestIdFormat()
const JOIN = FORMAT.separator + FORMAT.recordPrefix

/** The request id of the batch record of request `id` in job `jobArn`, as the engine writes it. */
function requestId(jobArn, id) {
  return jobArn + JOIN + String(id).padStart(FORMAT.recordDigits, '0')
}

/**
 * A pending entry is its resolve function (an InvokeModel call without a signal, the common case),
 * or `{ resolve, operation, signal?, onAbort? }`.
 */
function resolvePending(p, value) {
  ;(typeof p === 'function' ? p : p.resolve)(value)
}

function rejectPending(p, err) {
  resolvePending(p, Promise.reject(err))
}

/** Adds the tier keys the service echoed (`performanceConfigLatency`, `serviceTier`), only those, as the SDK does. */
function withTiers(out, extra) {
  if (extra && extra.performanceConfigLatency != null) out.performanceConfigLatency = extra.performanceConfigLatency
  if (extra && extra.serviceTier != null) out.serviceTier = extra.serviceTier
  return out
}

/** The result of an async native call: its value, or its error as an exception. */
function unwrap(result, key) {
  if (result.error) throw toException(result.error)
  return result[key]
}

class BatchInferenceClient {
  constructor(options) {
    this._options = options || {}
    this._pending = new Map()
    // Streaming answers still receiving events (on-demand streams), by request id.
    this._streams = new Map()
    this._engine = null
    this._buffer = null
    this._nextId = 1
    this._keepAlive = null
    this._listeners = { job: new Set(), progress: new Set() }
    this._progressTimer = null
    this._closed = false
    // Options that configure a mode are checked now, so a mistake fails here, naming the option;
    // a client with none (configured later by setup() or the environment) starts at its first send.
    const o = this._options
    if (o.batch || o.mode || o.openai || o.direct || o.journal || o.store) this._ensureEngine()
  }

  /** The resolved configuration, as plain values (the engine's, once it runs). */
  get config() {
    if (this._engine) return this._engine.config
    return call(() => native.resolveConfig(engineOptions(this._options).options))
  }

  _ensureEngine() {
    if (this._engine) return this._engine
    const { options, credentials } = engineOptions(this._options)
    this._engine = call(
      () =>
        new native.NativeEngine(
          options,
          (chunk) => this._onEvents(chunk),
          credentials ? credentialsCallback(credentials) : undefined,
        ),
    )
    this._buffer = new SubmitBuffer(
      (chunk) => this._engine.submit(chunk),
      (ids, err) => this._rejectIds(ids, fromNative(err)),
    )
    return this._engine
  }

  _onJob(job) {
    // Job-level events only: never request bodies or credentials.
    const log = this._options.logger
    if (log && typeof log.info === 'function')
      log.info(`bedrock-batch-bridge: job ${job.jobName} (${job.jobArn}) ${job.status}`)
    this._emit('job', job)
    this._progress()
  }

  _rejectIds(ids, err) {
    for (const id of ids) {
      const p = this._pending.get(id)
      if (p === undefined) continue
      this._forget(id, p)
      rejectPending(p, err)
    }
  }

  /** A job's status change, or a packed chunk of results (see NativeSettleChunk in binding.d.ts). */
  _onEvents(chunk) {
    if (chunk.job) this._onJob(chunk.job)
    if (chunk.ids.length > 0) this._settle(chunk)
    if (chunk.parts.length > 0) this._streamParts(chunk.parts)
  }

  /** More events of open streams, or their ends. */
  _streamParts(parts) {
    for (const part of parts) {
      const stream = this._streams.get(part.id)
      if (!stream) continue
      try {
        if (part.events.length > 2) stream.push(part.events.toString('utf8'))
      } catch (err) {
        this._endStream(
          part.id,
          stream,
          exception('ModelStreamErrorException', `A stream event could not be read: ${err.message}`),
        )
        continue
      }
      if (part.end) this._endStream(part.id, stream, part.error ? toException(part.error) : null)
    }
  }

  _endStream(id, stream, error) {
    this._streams.delete(id)
    stream.end(error)
    this._idle()
  }

  /** The stream of a streaming answer with its first events; it stays open for more when the answer is an open (on-demand) stream. */
  _openStream(id, shape, json, extra) {
    const stream = new EventStream(shape)
    stream.push(json)
    if (extra?.open) this._streams.set(id, stream)
    else stream.end()
    return stream
  }

  /** A streaming command's answer: its events (all of them, or the first of an open stream). */
  _streamOutput(id, p, json, extra, $metadata) {
    const stream = this._openStream(id, eventShape(p.operation), json, extra)
    // An abort while the stream is read ends it with AbortError, as the SDK's stream ends.
    const signal = p.signal
    if (signal && !signal.aborted) {
      const onAbort = () => {
        if (this._streams.get(id) === stream) this._streams.delete(id)
        stream.abort(abortError(signal))
        this._idle()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      stream.onDone = () => signal.removeEventListener('abort', onAbort)
    }
    if (p.operation === 'ConverseStream') return { stream, $metadata }
    const out = { body: stream, contentType: extra ? extra.contentType : 'application/json' }
    withTiers(out, extra)
    out.$metadata = $metadata
    return out
  }

  /** A front door's answer: as the wire carries it ([`_sendWire`]). */
  _wireOutput(id, p, bytes, extra, $metadata) {
    const out = { contentType: extra ? extra.contentType : 'application/json', requestId: $metadata.requestId }
    withTiers(out, extra)
    if (p.operation === 'InvokeModel' || p.operation === 'Converse') {
      out.body = Buffer.from(bytes)
      return out
    }
    out.stream = this._openStream(id, null, bytes.toString('utf8'), extra)
    return out
  }

  /** Settles a packed chunk of results. */
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
      if (p === undefined) continue
      this._forget(id, p)
      const error = errors?.get(i)
      if (error) {
        rejectPending(p, toException(error))
        continue
      }
      const extra = extras?.get(i)
      const arn = extra ? extra.jobArn : jobArn
      const $metadata = {
        httpStatusCode: 200,
        requestId: extra?.requestId ?? (arn ? requestId(arn, id) : undefined),
        extendedRequestId: undefined,
        cfId: undefined,
        attempts: extra?.attempts || 1,
        totalRetryDelay: 0,
      }
      if (typeof p !== 'function' && p.raw) {
        resolvePending(p, this._wireOutput(id, p, data.subarray(bodyStart, end), extra, $metadata))
        continue
      }
      if (typeof p !== 'function' && p.operation !== 'InvokeModel') {
        const text = data.toString('utf8', bodyStart, end)
        try {
          resolvePending(
            p,
            p.operation === 'Converse'
              ? converseOutput(JSON.parse(text), $metadata)
              : this._streamOutput(id, p, text, extra, $metadata),
          )
        } catch (err) {
          rejectPending(
            p,
            exception(
              'ModelErrorException',
              `The answer could not be read as a ${p.operation} response: ${err.message}`,
            ),
          )
        }
        continue
      }
      // Each body owns its bytes, as the SDK's do (`body.buffer` holds this answer only, and a
      // kept body does not keep the whole chunk alive).
      const body = new Uint8ArrayBlobAdapter(end - bodyStart)
      body.set(data.subarray(bodyStart, end))
      // Key for key as the SDK: the tier keys exist only when the service echoed them.
      const out = { body, contentType: extra ? extra.contentType : 'application/json' }
      withTiers(out, extra)
      out.$metadata = $metadata
      resolvePending(p, out)
    }
  }

  _forget(id, p) {
    this._pending.delete(id)
    if (typeof p !== 'function' && p.signal) p.signal.removeEventListener('abort', p.onAbort)
    this._idle()
  }

  /** Lets the process exit once nothing is pending and no stream is open. */
  _idle() {
    if (this._pending.size === 0 && this._streams.size === 0 && this._keepAlive) {
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
    const op = operationOf(command)
    if (OPERATION_CODES[op] === undefined) {
      return Promise.reject(
        new TypeError(
          `bedrock-batch-bridge handles InvokeModelCommand, InvokeModelWithResponseStreamCommand, ConverseCommand and ConverseStreamCommand; got ${command?.constructor?.name || typeof command}`,
        ),
      )
    }
    if (this._closed) return Promise.reject(exception('ClientClosedException', native.CLIENT_CLOSED))
    const input = command.input || {}
    const signal = options.abortSignal
    if (signal?.aborted) return Promise.reject(abortError(signal))
    const invoke = op === 'InvokeModel' || op === 'InvokeModelWithResponseStream'
    const body = invoke ? bodyBytes(input.body) : converseBody(input)
    if (body === null)
      return Promise.reject(
        exception('ValidationException', 'body must be a string, Buffer, Uint8Array, ArrayBuffer or typed array.'),
      )
    const key = options.idempotencyKey
    if (key !== undefined && typeof key !== 'string')
      return Promise.reject(exception('ValidationException', 'idempotencyKey must be a string.'))
    const modelId = typeof input.modelId === 'string' ? input.modelId : ''
    const requestOpts = invoke ? requestOptions(input, key) : key === undefined ? undefined : { idempotencyKey: key }
    return this._submit(op, modelId, body, requestOpts, signal, false)
  }

  /**
   * A request as the Bedrock runtime wire has it (the front doors): `body` is the HTTP body,
   * `requestOpts` the InvokeModel options from its headers (and an idempotency key). Resolves to
   * the answer as the wire carries it: `{ body, contentType, performanceConfigLatency?,
   * serviceTier?, requestId }`, with `stream` (an EventStream of JSON texts of wire-event arrays)
   * instead of `body` for the streaming operations.
   */
  _sendWire(op, modelId, body, requestOpts, signal) {
    if (this._closed) return Promise.reject(exception('ClientClosedException', native.CLIENT_CLOSED))
    if (signal?.aborted) return Promise.reject(abortError(signal))
    return this._submit(op, modelId, body, requestOpts, signal, true)
  }

  _submit(op, modelId, body, requestOpts, signal, raw) {
    try {
      this._ensureEngine()
    } catch (err) {
      return Promise.reject(err)
    }
    const id = this._nextId++
    const promise = new Promise((resolve) => {
      // A pending request costs one Map entry and its resolve function; rejecting resolves
      // with a rejected promise (a million may wait at once).
      let p = resolve
      if (signal || raw || op !== 'InvokeModel') p = { resolve, operation: op, signal, onAbort: null, raw }
      if (signal) {
        p.onAbort = () => {
          this._forget(id, p)
          this._buffer.flush()
          this._engine.cancel(id)
          resolve(Promise.reject(abortError(signal)))
        }
        signal.addEventListener('abort', p.onAbort, { once: true })
      }
      this._pending.set(id, p)
    })
    // Pending requests keep the process alive, as pending HTTP calls would.
    if (!this._keepAlive) this._keepAlive = setInterval(() => {}, 1 << 30)
    this._buffer.add(id, modelId, body, requestOpts, OPERATION_CODES[op])
    return promise
  }

  /**
   * The Python SDK's form: `await client.setup({ modelId, s3InputUri, s3OutputUri, roleArn, region,
   * minBatchSize, maxBatchSize, batchTimeout, pollInterval, jobTimeoutHours, jobNamePrefix,
   * debugMode, litellmMode, litellmModel, litellmApiBase, endpoints, credentials })`, before the
   * first send. Times are in seconds; defaults are the seed's.
   */
  async setup(opts = {}) {
    if (this._engine) throw new TypeError('setup() must be called before the first send()')
    this._options = withSetup(this._options, opts)
    this._ensureEngine()
  }

  /** `invokeModel(args, options?)`, as the aggregated BedrockRuntime client has it. */
  invokeModel(args, optionsOrCb, cb) {
    return this.send(new InvokeModelCommand(args), optionsOrCb, cb)
  }

  /** Submits what is queued now. */
  async flush() {
    if (!this._engine) return
    this._buffer.flush()
    this._engine.flush()
  }

  /** Flushes, waits for every job, then releases. Later sends reject with ClientClosedException. */
  async close() {
    this._closed = true
    if (!this._engine) return
    this._buffer.flush()
    await this._engine.close()
  }

  /** Stops at once: every pending request rejects with ClientClosedException. */
  destroy(options) {
    this._closed = true
    if (this._engine) {
      this._buffer.discard()
      this._engine.destroy(Boolean(options?.stopJobs))
    }
    for (const [id, p] of [...this._pending]) {
      this._forget(id, p)
      rejectPending(p, exception('ClientClosedException', 'The client was destroyed before this request settled.'))
    }
    for (const [id, stream] of [...this._streams])
      this._endStream(
        id,
        stream,
        exception('ClientClosedException', 'The client was destroyed before this stream ended.'),
      )
  }

  /** Counters: `{ queued, inFlight, padded, resubmitted, sentDirect, jobs, tokens: { input, output } }`. */
  stats() {
    if (!this._engine) {
      const empty = {
        queued: 0,
        inFlight: 0,
        padded: 0,
        resubmitted: 0,
        sentDirect: 0,
        jobs: [],
        tokens: { input: 0, output: 0 },
      }
      if (this._options.pricing) empty.estimatedSavingUsd = 0
      return empty
    }
    this._buffer.flush()
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
    if (s.estimatedSavingUsd != null) out.estimatedSavingUsd = s.estimatedSavingUsd
    if (s.store) {
      out.store = { kind: s.store.kind, location: s.store.location, bytes: s.store.bytes }
      // The deprecated name, as it was.
      out.journal = { path: s.store.location, bytes: s.store.bytes }
    }
    if (typeof s.leader === 'boolean') out.leader = s.leader
    return out
  }

  /**
   * The jobs of the journal or the store's group (every job it remembers, from this process and
   * earlier ones), or, without either, this client's jobs: `{ jobArn, jobName, modelId, status, createdAt,
   * totalRecordCount, successRecordCount, errorRecordCount }`.
   */
  async jobs() {
    const engine = this._ensureEngine()
    this._buffer.flush()
    const stored = unwrap(await engine.storedJobs(), 'jobs')
    if (stored) return stored.map((j) => ({ ...j, createdAt: new Date(j.createdAt) }))
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
    if (typeof jobArn !== 'string' || jobArn === '')
      throw new TypeError('results(jobArn): jobArn must be a job ARN string')
    const engine = this._ensureEngine()
    const pageSize = options.pageSize || 1000
    let after = null
    for (;;) {
      const page = unwrap(await engine.storedResults(jobArn, after, pageSize), 'results')
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

module.exports = { BatchInferenceClient }
