'use strict'
// Calls joined by their retries, for the wires of `serve` and `batchFetch`: a retry of a call joins
// the pending call or gets its settled answer (never a second record), and a streaming answer is
// replayed from its start to each attempt. The Bedrock wire (wire.js) knows a call by its
// `amz-sdk-invocation-id`; the OpenAI and Anthropic wires (wires/), whose SDKs send no idempotency
// key and re-send the same body after a timeout, by a hash of its route, its caller's credential
// and its body (`callKey`), which as the door's idempotency key lets a journal dedupe across a
// restart too.

const { createHash } = require('node:crypto')

/** How long a settled answer stays joinable (the SDKs retry within seconds; a journal keeps answers longer). */
const RETRY_WINDOW_MS = 2 * 60 * 1000

/** Whether a failure may succeed when sent again (the SDKs retry 408, 409, 429 and 5xx). */
function retryable(status) {
  return status === 408 || status === 409 || status === 429 || status >= 500
}

/** The key of a call: its route, credential (a digest), idempotency header if any, and body. */
function callKey(route, credential, idempotencyHeader, body) {
  return createHash('sha256')
    .update(`${route}\n${credential}\n${idempotencyHeader ?? ''}\n`)
    .update(body)
    .digest('hex')
}

/**
 * The items of one streaming answer (JSON texts of arrays of wire events), readable from the
 * start by each attempt that joins the call.
 */
class Replay {
  constructor(stream) {
    this._items = []
    this._done = false
    this._error = null
    this._waiters = []
    this._pump(stream)
  }

  async _pump(stream) {
    try {
      for await (const item of stream) {
        this._items.push(item)
        this._wake()
      }
    } catch (err) {
      this._error = err
    }
    this._done = true
    this._wake()
  }

  _wake() {
    const waiters = this._waiters
    this._waiters = []
    for (const w of waiters) w()
  }

  /** The items from the first; an error of the stream is thrown after the items before it. */
  async *items() {
    let next = 0
    for (;;) {
      while (next < this._items.length) yield this._items[next++]
      if (this._done) {
        if (this._error) throw this._error
        return
      }
      await new Promise((resolve) => this._waiters.push(resolve))
    }
  }
}

/** Pending and recently settled calls by key. */
class CallTable {
  /**
   * `keepsFailure(err)`: whether a failed call stays joinable for the retry window (a failure for
   * good), or is forgotten at once so that its retry is sent again.
   */
  constructor(keepsFailure) {
    this._keepsFailure = keepsFailure
    this._calls = new Map()
    this._sweeper = null
  }

  /**
   * The call of `key`: the known one (a retry), or a new one whose answer `start()` gives (a
   * promise); with no key, a new call that nothing joins. Resolves to `{ call, joined }`;
   * `call.answer` is the promise, `call.replay(out)` the Replay of a streaming answer,
   * `call.started` when it was started (the same for every attempt).
   */
  get(key, start) {
    const known = key == null ? undefined : this._calls.get(key)
    if (known) return { call: known, joined: true }
    const started = Date.now()
    const call = { key, answer: start(), expires: Number.POSITIVE_INFINITY, started, _replay: null }
    call.replay = (out) => {
      if (!call._replay) call._replay = new Replay(out.stream)
      return call._replay
    }
    if (key == null) return { call, joined: false }
    this._calls.set(key, call)
    const keep = () => {
      call.expires = Date.now() + RETRY_WINDOW_MS
      this._sweep()
    }
    // An answer, and a failure kept (one the SDK would not retry), stay for the retry window; a
    // failure that may pass when sent again is forgotten at once.
    call.answer.then(keep, (err) => (this._keepsFailure(err) ? keep() : this.forget(call)))
    return { call, joined: false }
  }

  /** Forgets a call (a later attempt with its key starts a new one). */
  forget(call) {
    if (call.key != null && this._calls.get(call.key) === call) this._calls.delete(call.key)
  }

  /** Drops settled calls whose retry window has passed (checked every 30 s while any is kept). */
  _sweep() {
    if (this._sweeper) return
    this._sweeper = setInterval(() => {
      const now = Date.now()
      for (const [key, call] of this._calls) if (call.expires <= now) this._calls.delete(key)
      if (this._calls.size === 0) {
        clearInterval(this._sweeper)
        this._sweeper = null
      }
    }, 30_000)
    this._sweeper.unref()
  }

  close() {
    if (this._sweeper) clearInterval(this._sweeper)
    this._sweeper = null
    this._calls.clear()
  }
}

module.exports = { CallTable, Replay, callKey, retryable, RETRY_WINDOW_MS }
