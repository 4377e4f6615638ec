'use strict'
// How a wire's batches are kept in the store of objects (objects.js): each batch is one object of
// `kind`, `{ object, jobs }` (the wire's batch object and the ARNs of the jobs known to hold its
// lines), written when it is created, when it is cancelled, when it ends, and in between at most
// once a tick when its status, counts or jobs changed (never once per line). The batches this
// process runs are served from memory; the others (a restart's, another process's of the group)
// are read from the store.

const { Writer, getJson, listJson } = require('./objects.js')

/** How often the batches running here are looked at (and written when they changed). */
const TICK_MS = 1000

class BatchKeeper {
  /**
   * `objects`: the store of objects; `kind`: the kind of the batches' objects; `view(state)`: a
   * running batch's object as it is now; `onError(err)`: a write that failed (the batch goes on).
   */
  constructor(objects, kind, { view, onError }) {
    this._objects = objects
    this.kind = kind
    this._view = view
    this._writer = new Writer(objects, (err) => onError(err))
    /** id → state (`{ object, run, ended, ... }`) of the batches run (or ended) in this process. */
    this.live = new Map()
    this._timer = null
  }

  /** Keeps `state` (a batch run here) in memory and looks at it every tick until it ends. */
  track(state) {
    this.live.set(state.object.id, state)
    if (!this._timer) {
      this._timer = setInterval(() => this._tick(), TICK_MS)
      this._timer.unref()
    }
  }

  /** Writes the batch's object and jobs if they changed since the last write; resolves once written. */
  save(state) {
    const object = state.ended || !state.run ? state.object : this._view(state)
    const text = JSON.stringify({ object, jobs: state.run ? state.run.jobArns() : (state.jobs ?? []) })
    if (text === state.saved) return state.writing ?? Promise.resolve()
    state.saved = text
    state.writing = this._writer.put(this.kind, object.id, text)
    return state.writing
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
    let running = 0
    for (const state of this.live.values()) {
      if (state.ended) continue
      running++
      this.save(state)
    }
    if (running === 0) this.stop()
  }

  /** Stops looking (until a batch is tracked again). */
  stop() {
    clearInterval(this._timer)
    this._timer = null
  }
}

module.exports = { BatchKeeper }
