'use strict'
// How a wire's batches are kept in the store of objects (objects.js): each batch is one object of
// `kind`, `{ object, jobs }` (the wire's batch object and the ARNs of the jobs known to hold its
// lines), written when it is created, when it is cancelled, when it ends, and in between at most
// once a tick when its status, counts or jobs changed (never once per line); a write that failed
// is made again at the next tick. The batches this process runs are served from memory; the
// others (a restart's, another process's of the group) are read from the store.

const { Writer, getJson, listJson } = require('./objects.js')

/** How often the batches running here are looked at (and written when they changed). */
const TICK_MS = 1000
/** How often a batch's end is tried while the store refuses its writes (1 s, 2 s, 4 s, ... 60 s at most). */
const END_TRIES = 12

class BatchKeeper {
  /**
   * `objects`: the store of objects; `kind`: the kind of the batches' objects; `view(state)`: a
   * running batch's object as it is now; `onError(err)`: a write of a tick or of a batch's end
   * that failed (the batch goes on; it is written again at the next tick).
   */
  constructor(objects, kind, { view, onError }) {
    this._objects = objects
    this.kind = kind
    this._view = view
    this.onError = onError
    this._writer = new Writer(objects)
    /** id → state (`{ object, run, ended, ... }`) of the batches run (or ended) in this process. */
    this.live = new Map()
    this._timer = null
    /** Once serve stops: nothing more is written, and no batch ends (its lines failing as the door closes is no end). */
    this.closed = false
  }

  /** Keeps `state` (a batch run here) in memory and looks at it every tick until it ends. */
  track(state) {
    this.live.set(state.object.id, state)
    this._ensureTicking()
  }

  _ensureTicking() {
    if (!this._timer && !this.closed) {
      this._timer = setInterval(() => this._tick(), TICK_MS)
      this._timer.unref()
    }
  }

  /**
   * Writes the batch's object and jobs if they changed since the last write; resolves once
   * written, rejects with the store's error (and the next tick writes it again).
   */
  save(state) {
    if (this.closed) return Promise.resolve()
    const object = state.ended || !state.run ? state.object : this._view(state)
    const text = JSON.stringify({ object, jobs: state.run ? state.run.jobArns() : (state.jobs ?? []) })
    if (text === state.saved) return state.writing ?? Promise.resolve()
    state.saved = text
    state.writing = this._writer.put(this.kind, object.id, text).catch((err) => {
      if (state.saved === text) state.saved = undefined
      this._ensureTicking()
      throw err
    })
    return state.writing
  }

  /** `save`, its failure told to `onError` (the next tick writes it again). */
  saveLater(state) {
    return this.save(state).catch((err) => this.onError(err))
  }

  /**
   * Runs `end()` (a batch's end: its files or results, then its object) until it succeeds: a
   * store error is told to `onError` and it is tried again later, up to END_TRIES times; then the
   * last error rejects.
   */
  async ending(end) {
    for (let i = 1; ; i++) {
      if (this.closed) return
      try {
        return await end()
      } catch (err) {
        if (i >= END_TRIES) throw err
        this.onError(err)
        await new Promise((resolve) => setTimeout(resolve, Math.min(60_000, TICK_MS * 2 ** (i - 1))))
      }
    }
  }

  /** A batch's record (`{ object, jobs }`) in the store, or null. */
  read(id) {
    return getJson(this._objects, this.kind, id)
  }

  /** Every batch's record, in creation order. */
  list() {
    return listJson(this._objects, this.kind)
  }

  /** Deletes a batch's record (and forgets it here). */
  async delete(id) {
    this.live.delete(id)
    await this._writer.idle()
    return this._objects.delete(this.kind, id)
  }

  _tick() {
    let busy = 0
    for (const state of this.live.values()) {
      // Ended and written: nothing more to do.
      if (state.ended && state.saved !== undefined) continue
      busy++
      this.saveLater(state)
    }
    if (busy === 0) this.stop()
  }

  /** Stops looking (until a batch is tracked again). */
  stop() {
    clearInterval(this._timer)
    this._timer = null
  }

  /**
   * Serve stops: nothing more is written and no batch ends here; those that had not ended stay
   * so in the store, for the next start to take up.
   */
  close() {
    this.closed = true
    this.stop()
  }
}

module.exports = { BatchKeeper }
