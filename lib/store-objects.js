'use strict'
// The documents a door keeps in its client's journal or PostgreSQL store (the wires' files and
// batches), by kind and id: what the engine's `object*` calls give, as Promises that reject with
// the typed exception of a store failure. In a PostgreSQL group every process sees the same ones.

const { unwrap } = require('./errors.js')

/** A TypeError naming `name` unless `value` is a non-empty string. */
function checkName(name, value) {
  if (typeof value !== 'string' || value === '')
    throw new TypeError(`${name} must be a non-empty string, not ${value === '' ? 'an empty string' : typeof value}`)
}

/** A TypeError unless `body` is bytes. */
function checkBody(body) {
  if (!(body instanceof Uint8Array)) throw new TypeError('the body must be a Buffer (or a Uint8Array)')
}

class StoreObjects {
  /** `engine`: a started NativeEngine that has a store. */
  constructor(engine) {
    this._engine = engine
  }

  /** Inserts or replaces a document (a replaced one keeps its place in list()). */
  async put(kind, id, body) {
    checkName('kind', kind)
    checkName('id', id)
    checkBody(body)
    unwrap(await this._engine.objectPut(kind, id, Buffer.isBuffer(body) ? body : Buffer.from(body)), 'error')
  }

  /** A document's bytes, or null. */
  async get(kind, id) {
    checkName('kind', kind)
    checkName('id', id)
    return unwrap(await this._engine.objectGet(kind, id), 'body') ?? null
  }

  /** The documents of a kind, `[{ id, body }]`, in the order they were first put. */
  async list(kind) {
    checkName('kind', kind)
    return unwrap(await this._engine.objectList(kind), 'items')
  }

  /** Deletes a document: whether there was one. */
  async delete(kind, id) {
    checkName('kind', kind)
    checkName('id', id)
    return unwrap(await this._engine.objectDelete(kind, id), 'deleted')
  }
}

module.exports = { StoreObjects, checkName, checkBody }
