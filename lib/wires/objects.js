'use strict'
// Where the Batch APIs keep their files and batches: the door's store of objects (the journal or
// the PostgreSQL store, `door.storeObjects()`), or, without a store, MemoryObjects below, of the
// same interface: `put(kind, id, buffer)`, `get(kind, id)` → Buffer or null, `list(kind)` →
// `[{ id, body }]` in first-insert order, `delete(kind, id)` → whether it existed. All async.

const { checkBody, checkName } = require('../store-objects.js')

/** The objects of a `serve` without a store: in this process only (a restart loses them). */
class MemoryObjects {
  constructor() {
    /** kind → (id → Buffer), each in first-insert order (a Map keeps a replaced key's place). */
    this._kinds = new Map()
  }

  /** Inserts or replaces an object (a copy of `buffer`). */
  async put(kind, id, buffer) {
    checkName('kind', kind)
    checkName('id', id)
    checkBody(buffer)
    let objects = this._kinds.get(kind)
    if (!objects) {
      objects = new Map()
      this._kinds.set(kind, objects)
    }
    objects.set(id, Buffer.from(buffer))
  }

  /** The object's body, or null. */
  async get(kind, id) {
    checkName('kind', kind)
    checkName('id', id)
    return this._kinds.get(kind)?.get(id) ?? null
  }

  /** Every object of `kind`, `[{ id, body }]`, in first-insert order. */
  async list(kind) {
    checkName('kind', kind)
    return [...(this._kinds.get(kind) ?? [])].map(([id, body]) => ({ id, body }))
  }

  /** Deletes an object: whether it existed. */
  async delete(kind, id) {
    checkName('kind', kind)
    checkName('id', id)
    return this._kinds.get(kind)?.delete(id) ?? false
  }
}

/** An object of JSON: the parsed body, or null. */
async function getJson(objects, kind, id) {
  const body = await objects.get(kind, id)
  return body === null ? null : JSON.parse(body.toString('utf8'))
}

/** Every object of `kind` as JSON, in first-insert order. */
async function listJson(objects, kind) {
  return (await objects.list(kind)).map(({ body }) => JSON.parse(body.toString('utf8')))
}

/** Writes `value` as JSON. */
function putJson(objects, kind, id, value) {
  return objects.put(kind, id, Buffer.from(JSON.stringify(value)))
}

/**
 * Writes of one object in the order they were asked (a later write never lands before an earlier
 * one), each a snapshot taken when asked. A failed write rejects its own promise only: the next
 * one is still made.
 */
class Writer {
  constructor(objects) {
    this._objects = objects
    /** `kind\0id` → the last write asked (settled, never rejecting), while one is under way. */
    this._chains = new Map()
  }

  /** Writes `value` (JSON text, or a value written as JSON) as `kind`/`id` once the writes before it are done. */
  put(kind, id, value) {
    const body = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))
    const key = `${kind}\u0000${id}`
    const prev = this._chains.get(key) ?? Promise.resolve()
    const write = prev.then(() => this._objects.put(kind, id, body))
    const done = write.then(
      () => {},
      () => {},
    )
    this._chains.set(key, done)
    done.then(() => {
      if (this._chains.get(key) === done) this._chains.delete(key)
    })
    return write
  }

  /** Resolves once every write asked so far is done (written or failed). */
  idle() {
    return Promise.all([...this._chains.values()])
  }
}

module.exports = { MemoryObjects, Writer, getJson, listJson, putJson }
