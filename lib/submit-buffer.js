'use strict'
// The send path: `send()` appends the request to this buffer (its body's bytes into one slab, off
// V8's heap), and the buffer crosses into the engine once per few thousand requests or once per
// turn of the event loop, whichever comes first: one native call per chunk, not per request.

const SLAB_BYTES = 1 << 20
const MAX_COUNT = 4096

class SubmitBuffer {
  /**
   * @param {(chunk: object) => void} submit hands a chunk to the engine (may throw)
   * @param {(ids: number[], err: unknown) => void} onFailure rejects the requests of a chunk the engine refused
   */
  constructor(submit, onFailure) {
    this._submit = submit
    this._onFailure = onFailure
    this._slab = Buffer.allocUnsafe(SLAB_BYTES)
    this._ends = new Uint32Array(MAX_COUNT)
    this._reset()
    this._scheduled = false
    this._flushSoon = () => {
      this._scheduled = false
      this.flush()
    }
  }

  _reset() {
    this._used = 0
    this._count = 0
    this._firstId = 0
    this._models = []
    this._modelIndex = null
    this._lastModel = undefined
    this._lastModelIndex = 0
    this._modelOf = null
    this._operations = null
    this._options = null
  }

  /** Requests waiting to cross. */
  get size() {
    return this._count
  }

  /**
   * Adds a request; `id`s are consecutive. `body` is a string or a Uint8Array; `options` (rare)
   * holds its InvokeModel options and idempotency key; `operation` is its code (0: InvokeModel).
   */
  add(id, modelId, body, options, operation = 0) {
    const isString = typeof body === 'string'
    // A UTF-16 code unit is at most 3 bytes of UTF-8.
    const most = isString ? body.length * 3 : body.byteLength
    if (this._count > 0 && (this._used + most > this._slab.length || id !== this._firstId + this._count)) this.flush()
    if (most > this._slab.length) this._slab = Buffer.allocUnsafe(most)
    if (this._count === 0) this._firstId = id
    const i = this._count
    this._used += isString ? this._slab.write(body, this._used) : copy(this._slab, body, this._used)
    this._ends[i] = this._used
    this._count = i + 1
    if (modelId !== this._lastModel) this._model(modelId, i)
    else if (this._modelOf) this._modelOf[i] = this._lastModelIndex
    if (operation !== 0 && this._operations === null) this._operations = new Uint8Array(MAX_COUNT)
    if (this._operations) this._operations[i] = operation
    if (options) {
      options.index = i
      if (this._options) this._options.push(options)
      else this._options = [options]
    }
    if (this._count === MAX_COUNT) this.flush()
    else if (!this._scheduled) {
      this._scheduled = true
      queueMicrotask(this._flushSoon)
    }
  }

  _model(modelId, i) {
    if (this._modelIndex === null) this._modelIndex = new Map()
    let m = this._modelIndex.get(modelId)
    if (m === undefined) {
      m = this._models.length
      this._models.push(modelId)
      this._modelIndex.set(modelId, m)
    }
    if (m !== 0 && this._modelOf === null) this._modelOf = new Uint16Array(MAX_COUNT)
    if (this._modelOf) this._modelOf[i] = m
    this._lastModel = modelId
    this._lastModelIndex = m
    // More distinct models than an index can name: send what is here.
    if (this._models.length === 0xffff) this.flush()
  }

  /** Hands what is buffered to the engine now. */
  flush() {
    const n = this._count
    if (n === 0) return
    const chunk = {
      firstId: this._firstId,
      data: this._slab.subarray(0, this._used),
      ends: this._ends.subarray(0, n),
      models: this._models,
      modelOf: this._modelOf ? this._modelOf.subarray(0, n) : undefined,
      operations: this._operations ? this._operations.subarray(0, n) : undefined,
      options: this._options || undefined,
    }
    const first = this._firstId
    this._reset()
    try {
      this._submit(chunk)
    } catch (err) {
      this._onFailure(
        Array.from({ length: n }, (_, i) => first + i),
        err,
      )
    }
  }

  /** Forgets what is buffered (its callers are rejected by the caller of this). */
  discard() {
    this._reset()
  }
}

function copy(slab, bytes, at) {
  slab.set(bytes, at)
  return bytes.byteLength
}

module.exports = { SubmitBuffer }
