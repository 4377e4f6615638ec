'use strict'
// The door: the one way into the engine for every front of the package (the client, the plugin,
// batchFetch and serve). It owns the engine (started at the first request, or at once when the
// options configure a mode), the submit buffer, the pending requests and their settlement, the
// streams still receiving events, and the job and progress events. Callers submit requests already
// read from their own form (an SDK command, a runtime HTTP request) and say how the answer should
// be shaped (settle.js). Package-internal: not part of the public API.

const native = require('../binding.js')
const { Uint8ArrayBlobAdapter } = require('./body.js')
const { operationCode } = require('./commands.js')
const { Inbox } = require('./inbox.js')
const { abortError, call, exception, fromNative, toException, unwrap } = require('./errors.js')
const { RecentFailures } = require('./failures.js')
const { ABORTED, ERROR, exposition, RequestMetrics, SUCCESS } = require('./metrics.js')
const { credentialsCallback, engineOptions } = require('./options.js')
const {
  SDK,
  applyPart,
  chunkIndex,
  firstEvents,
  invokeOutput,
  requestIdPrefix,
  responseMetadata,
  sdkOutput,
  wireOutput,
} = require('./settle.js')
const { PendingTable } = require('./pending.js')
const { StoreObjects } = require('./store-objects.js')
const { SubmitBuffer } = require('./submit-buffer.js')
const { Tracing } = require('./tracing.js')

const PROGRESS_INTERVAL_MS = 250

/**
 * A pending entry is its resolve function (an SDK-shaped InvokeModel call without a signal, the
 * common case), or `{ resolve, operation, shape, signal?, onAbort? }`.
 */
function resolvePending(p, value) {
  ;(typeof p === 'function' ? p : p.resolve)(value)
}

function rejectPending(p, err) {
  resolvePending(p, Promise.reject(err))
}

// The resolve function of the promise being made (see Door.submit).
let taken
function takeResolve(resolve) {
  taken = resolve
}

/** The counters of a door whose engine has not started. */
function emptyStats(options) {
  const empty = {
    queued: 0,
    inFlight: 0,
    padded: 0,
    resubmitted: 0,
    sentDirect: 0,
    jobs: [],
    tokens: { input: 0, output: 0 },
    tiers: {
      batch: { requests: 0, estimatedUsd: 0 },
      flex: { requests: 0, estimatedUsd: 0 },
      standard: { requests: 0, estimatedUsd: 0 },
    },
    deadlineFallbacks: 0,
    failedCalls: { s3: 0, bedrock: 0, store: 0 },
  }
  if (options.pricing) empty.estimatedSavingUsd = 0
  return empty
}

/** A plan as JS gets it (see RunPlan in index.d.ts), from the binding's models. */
function planOf(models) {
  const sum = (k) => models.reduce((a, m) => a + m[k], 0)
  const costs = (k) => (models.some((m) => m[k] == null) ? null : Math.round(sum(k) * 1e6) / 1e6)
  const out = models.map((m) => {
    const model = {
      modelId: m.modelId,
      jobs: m.jobs,
      records: m.records,
      paddedRecords: m.paddedRecords,
      requestsByTier: { batch: m.batchRequests, flex: m.flexRequests, standard: m.standardRequests },
      inputTokens: m.inputTokens,
      inputTokensMethod: m.inputTokensMethod,
      outputTokensUpperBound: m.outputTokensUpperBound,
      requestsWithoutMaxTokens: m.requestsWithoutMaxTokens,
      costUsd: m.costUsd ?? null,
      standardCostUsd: m.standardCostUsd ?? null,
    }
    if (m.inputTokensCounted != null) model.inputTokensCounted = m.inputTokensCounted
    return model
  })
  return {
    models: out,
    total: {
      jobs: sum('jobs'),
      records: sum('records'),
      paddedRecords: sum('paddedRecords'),
      requestsByTier: { batch: sum('batchRequests'), flex: sum('flexRequests'), standard: sum('standardRequests') },
      inputTokens: sum('inputTokens'),
      outputTokensUpperBound: sum('outputTokensUpperBound'),
      requestsWithoutMaxTokens: sum('requestsWithoutMaxTokens'),
      costUsd: costs('costUsd'),
      standardCostUsd: costs('standardCostUsd'),
    },
  }
}

class Door {
  /** `options`: the client's options (functions included: credentials, logger). Nothing starts yet. */
  constructor(options) {
    this._options = options
    this._engine = null
    this._buffer = null
    this._pending = new PendingTable()
    // Settled requests by model, operation and outcome, with their send-to-settle seconds.
    this._requests = new RequestMetrics()
    // The last requests that failed, with their exception's name and message (failures.js).
    this._failures = new RecentFailures()
    // OpenTelemetry spans of the calls and jobs, when traces are on (tracing.js).
    this._tracing = new Tracing()
    // Streaming answers still receiving events (on-demand streams), by request id.
    this._streams = new Map()
    this._nextId = 1
    this._keepAlive = null
    this._listeners = { job: new Set(), progress: new Set() }
    this._progressTimer = null
    this._closed = false
    // The engine's events, handled in order in slices that leave timers and I/O their turns.
    this._inbox = new Inbox((chunk) => this._onEvents(chunk))
  }

  /** The options the engine starts (or started) with. */
  get options() {
    return this._options
  }

  /** Whether the engine runs. */
  get started() {
    return this._engine !== null
  }

  /** Replaces the options the engine will start with (a TypeError once it runs). */
  configure(options) {
    if (this._engine) throw new TypeError('the options cannot change once the engine runs')
    this._options = options
  }

  /**
   * Starts the engine now when the options configure a mode, so that a mistake fails here, naming
   * the option; without such options (configured later by setup(), a host client or the
   * environment) it starts at the first request.
   */
  prime() {
    const o = this._options
    if (o.batch || o.mode || o.openai || o.direct || o.journal || o.store) this.start()
  }

  /** Starts the engine, if it does not run yet (throws the exception of a wrong option). */
  start() {
    if (this._engine) return
    const { options, credentials } = engineOptions(this._options)
    this._engine = call(
      () =>
        new native.NativeEngine(
          options,
          (chunk) => this._inbox.push(chunk),
          credentials ? credentialsCallback(credentials) : undefined,
        ),
    )
    this._buffer = new SubmitBuffer(
      (chunk) => this._engine.submit(chunk),
      (ids, err) => this._rejectIds(ids, fromNative(err)),
    )
  }

  /** The resolved configuration, as plain values (the engine's, once it runs). */
  get config() {
    if (this._engine) return this._engine.config
    return call(() => native.resolveConfig(engineOptions(this._options).options))
  }

  /** Why a request would be refused now, before anything else is read: the door is closed, or `signal` has aborted. */
  refusal(signal) {
    if (this._closed) return exception('ClientClosedException', native.CLIENT_CLOSED)
    if (signal?.aborted) return abortError(signal)
    return undefined
  }

  /**
   * Submits one request: `operation` (`InvokeModel`, `Converse`, ...) on `modelId`, with `body`
   * (the runtime's HTTP body: a string or bytes) and `options` (its InvokeModel options and
   * idempotency key, or undefined). Resolves to the answer in `shape` (settle.js: SDK or WIRE);
   * rejects with the request's exception, or AbortError once `signal` aborts (which takes the
   * request out of its queue if it has not been sent).
   */
  submit(shape, operation, modelId, body, options, signal) {
    const refused = this.refusal(signal)
    if (refused) return Promise.reject(refused)
    // The engine takes a chunk of requests at once: an option it cannot read (a deadline of
    // Infinity) would fail every request of the chunk, so it fails this one alone.
    if (options?.deadline !== undefined && !Number.isFinite(options.deadline))
      return Promise.reject(
        exception('ValidationException', 'deadline must be a finite number of milliseconds since the epoch.'),
      )
    try {
      this.start()
    } catch (err) {
      return Promise.reject(err)
    }
    const id = this._nextId++
    // A pending request costs one slot and its resolve function; rejecting resolves with a
    // rejected promise (a million may wait at once). The executor is shared: no closure per call.
    const promise = new Promise(takeResolve)
    const resolve = taken
    taken = undefined
    let p = resolve
    if (signal || shape !== SDK || operation !== 'InvokeModel') p = { resolve, operation, shape, signal, onAbort: null }
    if (signal) {
      p.onAbort = () => {
        this._observe(id, ABORTED, performance.now())
        this._forget(id, p)
        this._buffer.flush()
        this._engine.cancel(id)
        resolve(Promise.reject(abortError(signal)))
      }
      signal.addEventListener('abort', p.onAbort, { once: true })
    }
    this._pending.set(id, p, performance.now(), this._requests.tag(modelId, operation))
    this._tracing.start(id, operation, modelId, options?.idempotencyKey)
    this._holdOpen()
    this._buffer.add(id, modelId, body, options, operationCode(operation))
    return promise
  }

  /** `job`: one job entry on each status change; `progress`: `stats()` on changes, at most every 250 ms. */
  on(event, listener) {
    if (!this._listeners[event]) throw new TypeError(`unknown event ${JSON.stringify(event)}`)
    this._listeners[event].add(listener)
  }

  /** Submits what is queued now. */
  flush() {
    if (!this._engine) return
    this._buffer.flush()
    this._engine.flush()
  }

  /** Flushes, waits for every job, then releases. Later requests reject with ClientClosedException. */
  async close() {
    this._closed = true
    if (!this._engine) return
    this._buffer.flush()
    await this._engine.close()
    // Every answer the engine settled is handed to its caller before close() resolves.
    await this._inbox.drained()
  }

  /** Stops at once: every pending request rejects with ClientClosedException. */
  destroy(options) {
    this._closed = true
    if (this._engine) {
      this._buffer.discard()
      this._engine.destroy(Boolean(options?.stopJobs))
    }
    const now = performance.now()
    for (const [id, p] of this._pending.entries()) {
      const err = exception('ClientClosedException', 'The client was destroyed before this request settled.')
      this._observe(id, ERROR, now, err)
      this._forget(id, p)
      rejectPending(p, err)
    }
    this._tracing.close()
    for (const [id, stream] of [...this._streams])
      this._endStream(
        id,
        stream,
        exception('ClientClosedException', 'The client was destroyed before this stream ended.'),
      )
  }

  /** Counters (see Stats in index.d.ts). */
  stats() {
    if (!this._engine) return emptyStats(this._options)
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
      tiers: s.tiers,
      deadlineFallbacks: s.deadlineFallbacks,
      failedCalls: s.failedCalls,
    }
    if (s.estimatedSavingUsd != null) out.estimatedSavingUsd = s.estimatedSavingUsd
    if (s.store) {
      out.store = { kind: s.store.kind, location: s.store.location, bytes: s.store.bytes }
      // The deprecated name, as it was.
      out.journal = { path: s.store.location, bytes: s.store.bytes }
    }
    if (typeof s.leader === 'boolean') out.leader = s.leader
    if (s.maxCostUsd != null) out.spend = { committedUsd: s.committedUsd ?? 0, maxCostUsd: s.maxCostUsd }
    return out
  }

  /**
   * The Prometheus text exposition (format 0.0.4) of `stats()` and the settled requests (metrics.js);
   * with `group` (`{ members }` of the group, as serve reads them), the group's member processes too;
   * with `load` (requestsByModel(), as serve reads it), the requests held by model and state.
   */
  metrics(group, load) {
    return exposition(this.stats(), this._requests, group, load)
  }

  /**
   * The settled requests this door counted (metrics.js), for the dashboard: per model, the
   * requests answered (`success`), rejected (`error`) and aborted; and the rejections by model and
   * exception name. Names and counts only: never a message or a body.
   */
  requestSummary() {
    const models = new Map()
    for (const s of this._requests.series()) {
      const m = models.get(s.model) ?? { model: s.model, success: 0, error: 0, aborted: 0 }
      m[s.outcome] += s.count
      models.set(s.model, m)
    }
    const errors = new Map()
    for (const e of this._requests.errors()) {
      const key = `${e.model}\u0000${e.error}`
      const entry = errors.get(key) ?? { model: e.model, error: e.error, count: 0 }
      entry.count += e.count
      errors.set(key, entry)
    }
    return { models: [...models.values()], errors: [...errors.values()] }
  }

  /**
   * The last requests that failed (at most 50), newest first, for the dashboard: `{ at (epoch ms),
   * model, operation, error (the exception's name), message, jobArn? (a batch record's job) }`,
   * each message one line of at most 300 characters (failures.js). Requests their caller aborted
   * are not failures. Never a body or an answer.
   */
  recentFailures() {
    return this._failures.list((tag) => this._requests.labels(tag))
  }

  /**
   * A dry run's plan (`dryRun: true`): what is queued goes as close() would send it, and the plan
   * says per model and in total what the run would do and cost; the requests sent so far then
   * reject with DryRunException.
   */
  async plan() {
    this.start()
    this._buffer.flush()
    const r = await this._engine.plan()
    if (r.error) throw toException(r.error)
    return planOf(r.models)
  }

  /**
   * The documents of the client's journal or store (a StoreObjects: put/get/list/delete by kind
   * and id), or null when it has neither.
   */
  async storeObjects() {
    this.start()
    if (!this._engine.hasStore) return null
    this._objects ??= new StoreObjects(this._engine)
    return this._objects
  }

  /**
   * The batches holding the requests sent with these abort `signals` (still pending), or with an
   * idempotency key that starts with `keyPrefix` (those taken up after a restart):
   * `[{ jobArn?, onlyThese, requests }]` (a batch waiting for its job has no `jobArn`), in turn
   * with the sends before; null for a client of a group (its batches are its leader's).
   */
  async holding(signals, keyPrefix) {
    this.start()
    this._buffer.flush()
    const ids = []
    for (const [id, p] of this._pending.entries()) if (typeof p !== 'function' && signals.has(p.signal)) ids.push(id)
    const held = unwrap(await this._engine.holding(keyPrefix, ids), 'held')
    return held ?? null
  }

  /**
   * What each model's requests are doing now, by model id: `[{ modelId, queued, inJobs, onDemand,
   * inGroup, padded }]` (queued: waiting in this client, for a job slot included; padded: filler
   * records added to its jobs so far). Empty before the first request.
   */
  async requestsByModel() {
    if (!this._engine) return []
    this._buffer.flush()
    return unwrap(await this._engine.load(), 'models')
  }

  /**
   * The processes of the client's group alive now, `[{ host, pid, since, leads }]` (since: epoch
   * ms), oldest first; empty without a PostgreSQL store.
   */
  async groupMembers() {
    this.start()
    return unwrap(await this._engine.groupMembers(), 'members')
  }

  /** Adopts jobs into the journal (client.adopt): the jobs found, adopted or not with why. */
  async adopt(target) {
    const t = target ?? {}
    const bad = (why) => exception('ValidationException', `adopt(): ${why}`)
    if (typeof t !== 'object') throw bad('the target must be { jobArn } or { namePrefix, since? }')
    const hasArn = t.jobArn !== undefined
    const hasPrefix = t.namePrefix !== undefined
    if (hasArn === hasPrefix) throw bad('give either jobArn or namePrefix (one of them)')
    if (hasArn && (typeof t.jobArn !== 'string' || t.jobArn === ''))
      throw bad('jobArn must be a job ARN or id (a non-empty string)')
    if (hasPrefix && (typeof t.namePrefix !== 'string' || t.namePrefix === ''))
      throw bad('namePrefix must be a non-empty string')
    let since
    if (t.since !== undefined) {
      if (!hasPrefix) throw bad('since goes with namePrefix')
      since = t.since instanceof Date ? t.since.getTime() : t.since
      if (typeof since !== 'number' || !Number.isFinite(since) || since < 0)
        throw bad('since must be a Date or epoch milliseconds')
    }
    this.start()
    this._buffer.flush()
    const jobs = unwrap(await this._engine.adopt({ jobArn: t.jobArn, namePrefix: t.namePrefix, since }), 'jobs')
    return jobs.map((j) => {
      const out = {
        jobArn: j.jobArn,
        jobName: j.jobName,
        modelId: j.modelId,
        status: j.status,
        records: j.records,
        keyed: j.keyed,
        adopted: j.adopted,
      }
      if (j.reason) out.reason = j.reason
      return out
    })
  }

  /** The store's jobs (every job it remembers), or, without a store, this door's jobs. */
  async jobs() {
    this.start()
    this._buffer.flush()
    const stored = unwrap(await this._engine.storedJobs(), 'jobs')
    if (stored) return stored.map((j) => ({ ...j, createdAt: new Date(j.createdAt) }))
    return this._engine.stats().jobs.map((j) => ({
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

  /** The answers of one job from the store, in record order, `pageSize` per read. */
  async *results(jobArn, pageSize) {
    this.start()
    let after = null
    for (;;) {
      const page = unwrap(await this._engine.storedResults(jobArn, after, pageSize), 'results')
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

  _onJob(job) {
    // Job-level events only: never request bodies or credentials.
    const log = this._options.logger
    if (log && typeof log.info === 'function')
      log.info(`bedrock-batch-bridge: job ${job.jobName} (${job.jobArn}) ${job.status}`)
    this._tracing.job(job)
    this._emit('job', job)
    this._progress()
  }

  /** A warning of the engine: to the logger's `warn`, else as a process warning. */
  _onWarning(message) {
    const log = this._options.logger
    if (log && typeof log.warn === 'function') log.warn(message)
    else process.emitWarning(message, 'BedrockBatchWarning')
  }

  _rejectIds(ids, err) {
    const now = performance.now()
    for (const id of ids) {
      const p = this._pending.get(id)
      if (p === undefined) continue
      this._observe(id, ERROR, now, err)
      this._forget(id, p)
      rejectPending(p, err)
    }
  }

  /** A job's status change, or a packed chunk of results (see NativeSettleChunk in binding.d.ts). */
  _onEvents(chunk) {
    if (chunk.warning) this._onWarning(chunk.warning)
    if (chunk.job) this._onJob(chunk.job)
    if (chunk.ids.length > 0) this._settle(chunk)
    if (chunk.parts.length > 0) this._streamParts(chunk.parts)
  }

  /** Settles a packed chunk of results. */
  _settle(chunk) {
    this._progress()
    const { ids, ends, data, jobArn } = chunk
    const { errors, extras } = chunkIndex(chunk)
    const prefix = jobArn ? requestIdPrefix(jobArn) : null
    const now = performance.now()
    let start = 0
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]
      const end = ends[i]
      const bodyStart = start
      start = end
      const p = this._pending.get(id)
      if (p === undefined) continue
      const sent = this._pending.sentAt(id)
      const tag = this._pending.tag(id)
      this._forget(id, p)
      const error = errors?.get(i)
      const extra = error ? undefined : extras?.get(i)
      let err
      if (error) {
        err = toException(error)
        rejectPending(p, err)
      } else err = this._answer(id, p, data, bodyStart, end, extra, jobArn, prefix)
      const outcome = err === undefined ? SUCCESS : ERROR
      this._requests.observe(tag, outcome, (now - sent) / 1000, err?.name)
      if (err !== undefined) this._failures.add(tag, err, Date.now())
      if (this._tracing.spans !== null)
        this._tracing.end(id, outcome, {
          jobArn: error ? error.jobArn : (extra?.jobArn ?? (extra?.requestId ? undefined : jobArn)),
          onDemand: extra?.requestId !== undefined && !extra.jobArn,
          tier: extra?.serviceTier,
          errorName: err?.name,
          answer: err || extra?.open ? undefined : () => data.toString('utf8', bodyStart, end),
        })
    }
    this._tracing.sweep()
  }

  /**
   * Resolves pending request `id` (`p`) with its answer `data[bodyStart..end]` in the caller's
   * shape; returns the exception it was rejected with instead, if the answer could not be read.
   */
  _answer(id, p, data, bodyStart, end, extra, jobArn, prefix) {
    const $metadata = responseMetadata(id, extra, jobArn, prefix)
    if (typeof p === 'function') {
      p(invokeOutput(data, bodyStart, end, extra, $metadata))
      return undefined
    }
    const open = (shape, text, ex) => this._openStream(id, p, shape, text, ex)
    if (p.shape !== SDK) {
      p.resolve(wireOutput(p.operation, data.subarray(bodyStart, end), extra, $metadata, open))
      return undefined
    }
    if (p.operation === 'InvokeModel') {
      p.resolve(invokeOutput(data, bodyStart, end, extra, $metadata))
      return undefined
    }
    try {
      p.resolve(sdkOutput(p.operation, data.toString('utf8', bodyStart, end), extra, $metadata, open))
      return undefined
    } catch (err) {
      rejectPending(p, err)
      return err
    }
  }

  /**
   * The stream of request `id`'s streaming answer with its first events; it stays open for more
   * when the answer is an open (on-demand) stream. An SDK caller's abort while the stream is read
   * ends it with AbortError, as the SDK's stream ends.
   */
  _openStream(id, p, shape, text, extra) {
    const stream = firstEvents(shape, text, extra)
    if (extra?.open) {
      this._streams.set(id, stream)
      // Its request was forgotten just before (the last pending one may have let the process go).
      this._holdOpen()
    }
    const signal = p.signal
    if (p.shape === SDK && signal && !signal.aborted) {
      const onAbort = () => {
        if (this._streams.get(id) === stream) this._streams.delete(id)
        stream.abort(abortError(signal))
        this._idle()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      stream.onDone = () => signal.removeEventListener('abort', onAbort)
    }
    return stream
  }

  /** More events of open streams, or their ends. */
  _streamParts(parts) {
    for (const part of parts) {
      const stream = this._streams.get(part.id)
      if (!stream) continue
      const { ended, error } = applyPart(stream, part)
      if (ended) this._endStream(part.id, stream, error)
    }
  }

  _endStream(id, stream, error) {
    this._streams.delete(id)
    stream.end(error)
    this._idle()
  }

  /**
   * Counts pending request `id` as settled at `now` (`performance.now()`) with `outcome` (metrics.js),
   * keeps it among the last failures when it failed with `err`, and ends its span.
   */
  _observe(id, outcome, now, err) {
    const tag = this._pending.tag(id)
    this._requests.observe(tag, outcome, (now - this._pending.sentAt(id)) / 1000, err?.name)
    if (outcome === ERROR) this._failures.add(tag, err, Date.now())
    if (this._tracing.spans !== null) this._tracing.end(id, outcome, { errorName: err?.name })
  }

  _forget(id, p) {
    this._pending.delete(id)
    if (typeof p !== 'function' && p.signal) p.signal.removeEventListener('abort', p.onAbort)
    this._idle()
  }

  /** Pending requests and open streams keep the process alive, as pending HTTP calls would. */
  _holdOpen() {
    if (!this._keepAlive) this._keepAlive = setInterval(() => {}, 1 << 30)
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
}

module.exports = { Door }
