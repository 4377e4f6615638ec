'use strict'
// OpenAI Files for the Batch API: `POST /v1/files` (multipart/form-data, `purpose=batch`),
// `GET /v1/files`, `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`.
// Uploaded input files and the batches' output and error files, kept in the door's store of
// objects (objects.js: the journal, the PostgreSQL store, or memory without a store): each file's
// object (`openai.file`) and its content (`openai.file.content`), each written once.

const { randomBytes } = require('node:crypto')
const { WireError, invalid } = require('./errors.js')
const { getJson, listJson, putJson } = require('./objects.js')

const FILE = 'openai.file'
const CONTENT = 'openai.file.content'

/** The purposes a file may be uploaded with here (batch input); `batch_output` is this server's own. */
const PURPOSES = new Set(['batch'])

/** An id of `prefix` and 24 random hex characters. */
function newId(prefix) {
  return `${prefix}${randomBytes(12).toString('hex')}`
}

/**
 * One page of `items` (newest first) after the one with id `after` (or before `before`):
 * `{ data, has_more }`; `limit` 1–`max` (default `dflt`); `names`: the query's names for them.
 */
function page(items, { limit, after, before, dflt = 20, max = 100, names = ['limit', 'after', 'before'] }) {
  const [param, afterName, beforeName] = names
  let n = dflt
  if (limit !== null && limit !== undefined && limit !== '') {
    n = Number(limit)
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw invalid(param, `${param} must be a whole number from 1 to ${max}.`)
  }
  let from = 0
  let to = items.length
  if (after) {
    const i = items.findIndex((x) => x.id === after)
    if (i < 0) throw invalid(afterName, `No object with id ${JSON.stringify(after)} to list after.`)
    from = i + 1
  }
  if (before) {
    const i = items.findIndex((x) => x.id === before)
    if (i < 0) throw invalid(beforeName, `No object with id ${JSON.stringify(before)} to list before.`)
    to = i
    from = Math.max(from, to - n)
  }
  const data = items.slice(from, Math.min(to, from + n))
  return { data, has_more: before ? from > 0 : from + n < to }
}

class FileStore {
  /** `objects`: where files are kept (objects.js). */
  constructor(objects) {
    this._objects = objects
  }

  /** Adds a file (its content first, then its object): its object. `id`: its id, else a new one. */
  async add(filename, purpose, bytes, id = newId('file-')) {
    const object = {
      id,
      object: 'file',
      bytes: bytes.length,
      created_at: Math.floor(Date.now() / 1000),
      filename,
      purpose,
      status: 'processed',
      status_details: null,
      expires_at: null,
    }
    await this._objects.put(CONTENT, id, bytes)
    await putJson(this._objects, FILE, id, object)
    return object
  }

  /** A file's object, or a 404 naming it. */
  async get(id) {
    const object = await getJson(this._objects, FILE, id)
    if (!object) throw notFound(id)
    return object
  }

  /** A file's content, or a 404 naming it. */
  async content(id) {
    const [object, bytes] = await Promise.all([this._objects.get(FILE, id), this._objects.get(CONTENT, id)])
    if (!object || !bytes) throw notFound(id)
    return bytes
  }

  /** `POST /v1/files`: a multipart/form-data body with `file` and `purpose`. */
  async upload(contentType, body) {
    if (!/^multipart\/form-data\b/i.test(contentType ?? ''))
      throw invalid(null, 'POST /v1/files takes multipart/form-data (with "file" and "purpose").')
    let form
    try {
      form = await new Request('http://localhost/', {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      }).formData()
    } catch (err) {
      throw invalid(null, `The multipart body could not be read: ${err.message}`)
    }
    const purpose = form.get('purpose')
    if (typeof purpose !== 'string' || purpose === '')
      throw invalid('purpose', "Missing required parameter: 'purpose'.")
    if (!PURPOSES.has(purpose))
      throw invalid(
        'purpose',
        `purpose ${JSON.stringify(purpose)} is not supported here: this server takes "batch" files.`,
      )
    const file = form.get('file')
    if (!file || typeof file === 'string') throw invalid('file', "Missing required parameter: 'file' (a file part).")
    return this.add(file.name || 'upload.jsonl', purpose, Buffer.from(await file.arrayBuffer()))
  }

  /** `GET /v1/files`: newest first (or `order=asc`), `purpose`, `limit` (≤ 10,000), `after`. */
  async list(query) {
    let items = (await listJson(this._objects, FILE)).reverse()
    const order = query.get('order') ?? 'desc'
    if (order !== 'asc' && order !== 'desc') throw invalid('order', 'order must be "asc" or "desc".')
    if (order === 'asc') items.reverse()
    const purpose = query.get('purpose')
    if (purpose) items = items.filter((f) => f.purpose === purpose)
    const { data, has_more } = page(items, {
      limit: query.get('limit'),
      after: query.get('after'),
      dflt: 10000,
      max: 10000,
    })
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more }
  }

  /** `DELETE /v1/files/{id}`. */
  async delete(id) {
    if (!(await this._objects.delete(FILE, id))) throw notFound(id)
    await this._objects.delete(CONTENT, id)
    return { id, object: 'file', deleted: true }
  }
}

function notFound(id) {
  return new WireError(404, `No such File object: ${id}`, { param: 'id', code: 'file_not_found' })
}

module.exports = { FileStore, newId, page }
