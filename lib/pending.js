'use strict'
// The pending requests of a door, by id. Ids are handed out in order (1, 2, 3, ...), so they live
// in blocks of consecutive slots rather than in a Map: a million pending requests cost a slot
// each, set and found by arithmetic, and a block is dropped once every request in it settled.
// Beside each entry, in typed arrays of the block: its send time and its metrics tag (metrics.js).

const BLOCK = 4096

class PendingTable {
  constructor() {
    // `_blocks[i]` holds ids `(_first + i) * BLOCK` to `(_first + i + 1) * BLOCK - 1`.
    this._blocks = []
    // Parallel to `_blocks`: per block, the send times (Float64Array) and tags (Uint32Array).
    this._times = []
    this._tags = []
    this._first = 0
    this._live = []
    this.size = 0
  }

  /** The entry of `id`, or undefined. */
  get(id) {
    const block = this._blocks[Math.floor(id / BLOCK) - this._first]
    return block === undefined ? undefined : block[id % BLOCK]
  }

  /** When `id` was sent (`performance.now()` as given to set), while it is pending. */
  sentAt(id) {
    return this._times[Math.floor(id / BLOCK) - this._first][id % BLOCK]
  }

  /** The metrics tag of `id` (as given to set), while it is pending. */
  tag(id) {
    return this._tags[Math.floor(id / BLOCK) - this._first][id % BLOCK]
  }

  /** Sets the entry of `id` (an id not pending yet), sent at `time` with metrics tag `tag`. */
  set(id, value, time = 0, tag = 0) {
    const b = Math.floor(id / BLOCK)
    if (this._blocks.length === 0) this._first = b
    let i = b - this._first
    if (i < 0) {
      // An id below the first block (never, as ids grow; kept correct anyway).
      this._blocks.unshift(...new Array(-i))
      this._times.unshift(...new Array(-i))
      this._tags.unshift(...new Array(-i))
      this._live.unshift(...new Array(-i).fill(0))
      this._first = b
      i = 0
    }
    let block = this._blocks[i]
    if (block === undefined) {
      block = new Array(BLOCK)
      while (this._blocks.length < i) {
        this._blocks.push(undefined)
        this._times.push(undefined)
        this._tags.push(undefined)
        this._live.push(0)
      }
      this._blocks[i] = block
      this._times[i] = new Float64Array(BLOCK)
      this._tags[i] = new Uint32Array(BLOCK)
      this._live[i] = 0
    }
    if (block[id % BLOCK] === undefined) {
      this._live[i]++
      this.size++
    }
    block[id % BLOCK] = value
    this._times[i][id % BLOCK] = time
    this._tags[i][id % BLOCK] = tag
  }

  /** Removes the entry of `id`; whether it was there. */
  delete(id) {
    const i = Math.floor(id / BLOCK) - this._first
    const block = this._blocks[i]
    if (block === undefined) return false
    const slot = id % BLOCK
    if (block[slot] === undefined) return false
    block[slot] = undefined
    this.size--
    if (--this._live[i] === 0) this._dropBlock(i)
    return true
  }

  _dropBlock(i) {
    this._blocks[i] = undefined
    this._times[i] = undefined
    this._tags[i] = undefined
    // Settled blocks at the front go, so the table follows the ids forward.
    let n = 0
    while (n < this._blocks.length && this._blocks[n] === undefined) n++
    if (n > 0) {
      this._blocks.splice(0, n)
      this._times.splice(0, n)
      this._tags.splice(0, n)
      this._live.splice(0, n)
      this._first += n
    }
  }

  /** Every `[id, entry]` pending now (a copy). */
  entries() {
    const out = []
    for (let i = 0; i < this._blocks.length; i++) {
      const block = this._blocks[i]
      if (block === undefined) continue
      const base = (this._first + i) * BLOCK
      for (let s = 0; s < BLOCK; s++) if (block[s] !== undefined) out.push([base + s, block[s]])
    }
    return out
  }
}

module.exports = { PendingTable }
