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
    const parts = parseMultipart(contentType, body)
    // The first part of each name counts (as FormData.get() reads a form).
    const first = (name) => parts.find((p) => p.name === name)
    const purposePart = first('purpose')
    const purpose = purposePart && purposePart.filename === null ? purposePart.data.toString('utf8') : undefined
    if (typeof purpose !== 'string' || purpose === '')
      throw invalid('purpose', "Missing required parameter: 'purpose'.")
    if (!PURPOSES.has(purpose))
      throw invalid(
        'purpose',
        `purpose ${JSON.stringify(purpose)} is not supported here: this server takes "batch" files.`,
      )
    const file = first('file')
    if (!file || file.filename === null) throw invalid('file', "Missing required parameter: 'file' (a file part).")
    return this.add(file.filename || 'upload.jsonl', purpose, file.data)
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

const CRLF = Buffer.from('\r\n')
/** At most this many bytes of headers per part. */
const MAX_PART_HEADERS = 16 * 1024

/** A 400 saying why a multipart body cannot be read. */
function unreadable(why) {
  return invalid(null, `The multipart body could not be read: ${why}.`)
}

/**
 * The parameters of a header value after its first `;` (`name=token` or `name="quoted"`, names in
 * lower case; `name*=utf-8''…` decoded): a Map, or a 400 when they cannot be read.
 */
function headerParams(value) {
  const params = new Map()
  const re = /;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))\s*/gy
  const semi = value.indexOf(';')
  if (semi < 0) return params
  re.lastIndex = semi
  while (re.lastIndex < value.length) {
    const at = re.lastIndex
    const m = re.exec(value)
    if (!m || m.index !== at) {
      // A stray `;` or blank at the end is no parameter.
      if (/^[;\s]*$/.test(value.slice(at))) break
      throw unreadable(`the header parameters ${JSON.stringify(value.slice(at, at + 60))} are not name=value`)
    }
    const name = m[1].toLowerCase()
    let v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]
    if (name.endsWith('*')) {
      const ext = /^utf-8'[^']*'(.*)$/i.exec(v)
      if (!ext) throw unreadable(`${name} is not utf-8''…`)
      try {
        v = decodeURIComponent(ext[1])
      } catch {
        throw unreadable(`${name} is not valid percent-encoding`)
      }
      params.set(name.slice(0, -1), v)
      continue
    }
    // A filename* given before keeps its place.
    if (!params.has(name)) params.set(name, v)
  }
  return params
}

/**
 * A multipart/form-data body (RFC 7578, RFC 2046 §5.1.1) as its parts, in order: `[{ name,
 * filename (null for a field), type, data: Buffer }]`. A 400 (WireError) says why a body cannot
 * be read: no boundary in `contentType`, a body cut short, a part without its Content-Disposition.
 * Browsers' escapes in names (`%22`, `%0D`, `%0A`) are read back; a part's bytes are never looked
 * into (a file may hold the boundary's text anywhere but after CRLF and `--`).
 */
function parseMultipart(contentType, body) {
  const boundary = headerParams(contentType).get('boundary')
  if (boundary === undefined || boundary === '') throw unreadable('its Content-Type has no boundary')
  if (boundary.length > 70) throw unreadable('its boundary is longer than 70 characters')
  const dash = Buffer.from(`--${boundary}`, 'utf8')
  const delimiter = Buffer.concat([CRLF, dash])
  // The first delimiter: at the start, or after a preamble and CRLF.
  let at = body.subarray(0, dash.length).equals(dash) ? 0 : body.indexOf(delimiter)
  if (at < 0) throw unreadable('no boundary in the body')
  at += at === 0 && body[0] !== 0x0d ? dash.length : delimiter.length
  const parts = []
  for (;;) {
    // After a delimiter: `--` ends the body (an epilogue is ignored); else padding and CRLF.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts
    while (body[at] === 0x20 || body[at] === 0x09) at++
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw unreadable('a boundary is not followed by CRLF')
    at += 2
    // The part's headers, up to the blank line.
    const end = body.indexOf('\r\n\r\n', at - 2)
    if (end < 0 || end - at > MAX_PART_HEADERS) throw unreadable("a part's headers do not end")
    const headers = new Map()
    const head = end < at ? '' : body.subarray(at, end).toString('utf8')
    for (const line of head === '' ? [] : head.split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon <= 0) throw unreadable(`a part's header line ${JSON.stringify(line.slice(0, 60))} has no name`)
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
    }
    at = Math.max(end, at - 2) + 4
    const disposition = headers.get('content-disposition')
    if (!disposition || !/^form-data\s*(;|$)/i.test(disposition))
      throw unreadable('a part has no Content-Disposition: form-data')
    const params = headerParams(disposition)
    const fromBrowser = (v) => v.replace(/%22/g, '"').replace(/%0D/gi, '\r').replace(/%0A/gi, '\n')
    const name = params.get('name')
    if (name === undefined) throw unreadable('a part has no name')
    // Its bytes: up to the next delimiter.
    const next = body.indexOf(delimiter, at)
    if (next < 0) throw unreadable('it ends before its closing boundary')
    let data = body.subarray(at, next)
    if (/^base64$/i.test(headers.get('content-transfer-encoding') ?? ''))
      data = Buffer.from(data.toString('latin1'), 'base64')
    const filename = params.has('filename') ? fromBrowser(params.get('filename')) : null
    parts.push({
      name: fromBrowser(name),
      filename,
      type: headers.get('content-type') ?? null,
      data: Buffer.from(data),
    })
    at = next + delimiter.length
  }
}

function notFound(id) {
  return new WireError(404, `No such File object: ${id}`, { param: 'id', code: 'file_not_found' })
}

module.exports = { FileStore, newId, page, parseMultipart }
