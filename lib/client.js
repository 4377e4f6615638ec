'use strict'
// BatchInferenceClient: a drop-in for BedrockRuntimeClient whose InvokeModel calls run as Bedrock
// batch inference jobs. A thin shell over the door (door.js), which owns the engine, the pending
// requests and their settlement; this class reads the SDK's call forms and the seed's `setup()`.

const { InvokeModelCommand, sendCommand } = require('./commands.js')
const { Door } = require('./door.js')
const { withSetup } = require('./options.js')

// The constructor's option that hands it a door already built (clientOver), never the public's.
const OVER = Symbol('door')

class BatchInferenceClient {
  constructor(options) {
    this._door = options?.[OVER] ?? new Door(options || {})
    // Options that configure a mode are checked now, so a mistake fails here, naming the option;
    // a client with none (configured later by setup() or the environment) starts at its first send.
    this._door.prime()
  }

  /** The resolved configuration, as plain values (the engine's, once it runs). */
  get config() {
    return this._door.config
  }

  /** `job`: one job entry on each status change; `progress`: `stats()` on changes, at most every 250 ms. */
  on(event, listener) {
    this._door.on(event, listener)
    return this
  }

  /** Sends a command: `send(cmd)`, `send(cmd, options)`, `send(cmd, cb)`, `send(cmd, options, cb)`. */
  send(command, optionsOrCb, cb) {
    const callback = typeof optionsOrCb === 'function' ? optionsOrCb : cb
    const options = typeof optionsOrCb === 'function' ? undefined : optionsOrCb
    const promise = sendCommand(this._door, command, options || {})
    if (typeof callback === 'function') {
      promise.then(
        (out) => callback(null, out),
        (err) => callback(err),
      )
      return undefined
    }
    return promise
  }

  /**
   * The Python SDK's form, before the first send: `await client.setup(options)` with the
   * SetupOptions of index.d.ts (lib/options.js reads them). Times are in seconds; defaults are the
   * seed's.
   */
  async setup(opts = {}) {
    if (this._door.started) throw new TypeError('setup() must be called before the first send()')
    this._door.configure(withSetup(this._door.options, opts))
    this._door.start()
  }

  /** `invokeModel(args, options?)`, as the aggregated BedrockRuntime client has it. */
  invokeModel(args, optionsOrCb, cb) {
    return this.send(new InvokeModelCommand(args), optionsOrCb, cb)
  }

  /** Submits what is queued now. */
  async flush() {
    this._door.flush()
  }

  /** Flushes, waits for every job, then releases. Later sends reject with ClientClosedException. */
  async close() {
    await this._door.close()
  }

  /** Stops at once: every pending request rejects with ClientClosedException. */
  destroy(options) {
    this._door.destroy(options)
  }

  /** Counters: `{ queued, inFlight, padded, resubmitted, sentDirect, jobs, tokens: { input, output }, store? }`. */
  stats() {
    return this._door.stats()
  }

  /** Prometheus metrics: the text exposition format 0.0.4 (docs/observability.md). */
  metrics() {
    return this._door.metrics()
  }

  /** What each model's requests are doing now; see ModelLoad in index.d.ts. */
  async requestsByModel() {
    return this._door.requestsByModel()
  }

  /** A dry run's plan (`dryRun: true`); see RunPlan in index.d.ts. */
  async plan() {
    return this._door.plan()
  }

  /**
   * The jobs of the store (the journal, or the store's group: every job it remembers, from this
   * process and earlier ones), or, without one, this client's jobs: `{ jobArn, jobName, modelId,
   * status, createdAt, totalRecordCount, successRecordCount, errorRecordCount }`.
   */
  async jobs() {
    return this._door.jobs()
  }

  /**
   * Adopts jobs no store knows (a run without a journal, a crashed script) into the journal:
   * `{ jobArn }` or `{ namePrefix, since? }` (`since`: a Date or epoch ms). Each job of this
   * package found is recorded and polled like a job of this run, and its answers kept; a later
   * send of the same content resolves from them. Resolves to the jobs found, each `{ jobArn,
   * jobName, modelId, status, records, keyed, adopted, reason? }`.
   */
  async adopt(target) {
    return this._door.adopt(target)
  }

  /**
   * The answers of one job from the store, as an async iterable of `{ recordId, idempotencyKey,
   * output?: Uint8Array, error?: { name, message } }`, in record order.
   */
  async *results(jobArn, options = {}) {
    if (typeof jobArn !== 'string' || jobArn === '')
      throw new TypeError('results(jobArn): jobArn must be a job ARN string')
    yield* this._door.results(jobArn, options.pageSize || 1000)
  }
}

/** A client over a door already built (batchFetch and serve hand theirs to the wire handler too). */
function clientOver(door) {
  return new BatchInferenceClient({ [OVER]: door })
}

module.exports = { BatchInferenceClient, clientOver }
