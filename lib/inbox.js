'use strict'
// The engine's events (settled chunks, job changes, warnings, stream parts) as the addon hands them
// over, handled in order in slices of at most SLICE_MS of work, each slice in its own turn of the
// event loop. Node runs up to a thousand queued calls of a thread-safe function in one go: when a
// million answers arrive together (twenty 50,000-record jobs ending at once), handling them as
// they come would give timers and I/O no turn for seconds (an HTTP server in the same process
// would stall); here they get one between slices.

const { performance } = require('node:perf_hooks')

/** The longest stretch of event handling before timers and I/O get a turn, in milliseconds. */
const SLICE_MS = 20

class Inbox {
  /** `handle(event)`: what to do with each event, in order. */
  constructor(handle) {
    this._handle = handle
    this._queue = []
    this._head = 0
    this._scheduled = false
    this._waiters = []
    this._drain = () => this._run()
  }

  /** An event from the engine: handled in a later slice, after those before it. */
  push(event) {
    this._queue.push(event)
    if (!this._scheduled) {
      this._scheduled = true
      setImmediate(this._drain)
    }
  }

  /** Resolves once every event pushed so far is handled. */
  drained() {
    if (!this._scheduled) return Promise.resolve()
    return new Promise((resolve) => this._waiters.push(resolve))
  }

  _run() {
    const until = performance.now() + SLICE_MS
    try {
      while (this._head < this._queue.length) {
        const event = this._queue[this._head]
        this._queue[this._head++] = undefined
        this._handle(event)
        if (performance.now() >= until) break
      }
    } finally {
      if (this._head < this._queue.length) setImmediate(this._drain)
      else {
        this._queue = []
        this._head = 0
        this._scheduled = false
        const waiters = this._waiters
        this._waiters = []
        for (const resolve of waiters) resolve()
      }
    }
  }
}

module.exports = { Inbox, SLICE_MS }
