'use strict'
// The pending requests of a door, by id. Ids are handed out in order (1, 2, 3, ...), so they live
// in blocks of consecutive slots rather than in a Map: a million pending requests cost a slot
// each, set and found by arithmetic, and a block is dropped once every request in it settled.

const BLOCK = 4096

class PendingTable {
  constructor() {
    // `_blocks[i]` holds ids `(_first + i) * BLOCK` to `(_first + i + 1) * BLOCK - 1`.
    this._blocks = []
    this._first = 0
    this._live = []
    this.size = 0
  }

  /** The entry of `id`, or undefined. */
  get(id) {
    const block = this._blocks[Math.floor(id / BLOCK) - this._first]
    return block === undefined ? undefined : block[id % BLOCK]
  }

  /** Sets the entry of `id` (an id not pending yet). */
  set(id, value) {
    const b = Math.floor(id / BLOCK)
    if (this._blocks.length === 0) this._first = b
    let i = b - this._first
    if (i < 0) {
      // An id below the first block (never, as ids grow; kept correct anyway).
      this._blocks.unshift(...new Array(-i))
      this._live.unshift(...new Array(-i).fill(0))
      this._first = b
      i = 0
    }
    let block = this._blocks[i]
    if (block === undefined) {
      block = new Array(BLOCK)
      while (this._blocks.length < i) {
        this._blocks.push(undefined)
        this._live.push(0)
      }
      this._blocks[i] = block
      this._live[i] = 0
    }
    if (block[id % BLOCK] === undefined) {
      this._live[i]++
      this.size++
    }
    block[id % BLOCK] = value
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
    // Settled blocks at the front go, so the table follows the ids forward.
    let n = 0
    while (n < this._blocks.length && this._blocks[n] === undefined) n++
    if (n > 0) {
      this._blocks.splice(0, n)
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
