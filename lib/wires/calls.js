'use strict'
// The calls of the OpenAI and Anthropic wires, joined by their retries. The official SDKs send no
// idempotency key and re-send the same body after a timeout or a dropped connection: a call is
// known by a hash of its route, its caller's credential and its body, and a re-sent one joins the
// pending call or gets its settled answer (never a second record). The same hash, as the door's
// idempotency key, lets a journal dedupe across a restart too.

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
  /** `statusOf(err)`: the HTTP status a failure is answered with. */
  constructor(statusOf) {
    this._statusOf = statusOf
    this._calls = new Map()
    this._sweeper = null
  }

  /**
   * The call of `key`: the known one (a retry), or a new one whose answer `start()` gives (a
   * promise). Resolves to `{ call, joined }`; `call.answer` is the promise, `call.replay(out)` the
   * Replay of a streaming answer, `call.id` an id the wire's answer can carry (the same for every
   * attempt).
   */
  get(key, start) {
    const known = this._calls.get(key)
    if (known) return { call: known, joined: true }
    const call = { key, answer: null, expires: Number.POSITIVE_INFINITY, started: Date.now(), _replay: null }
    call.replay = (out) => {
      if (!call._replay) call._replay = new Replay(out.stream)
      return call._replay
    }
    this._calls.set(key, call)
    call.answer = start()
    const keep = () => {
      call.expires = Date.now() + RETRY_WINDOW_MS
      this._sweep()
    }
    const forget = () => {
      if (this._calls.get(key) === call) this._calls.delete(key)
    }
    // An answer, and a failure for good (a 4xx the SDK would not retry), stay for the retry
    // window; a failure that may pass when sent again is forgotten at once.
    call.answer.then(keep, (err) => (retryable(this._statusOf(err)) ? forget() : keep()))
    return { call, joined: false }
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
