'use strict'
// OpenAI Batches: `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches`,
// `POST /v1/batches/{id}/cancel`. An input file's lines are all checked first (any error: the
// batch is `failed` with OpenAI's `errors` list, nothing is sent); then every line goes through
// the door at once, translated as the per-call wire translates it, so the engine makes its jobs
// of them (one per model, split by the size limits). Output and error files in OpenAI's line
// shape. Batches are kept in the store of objects (`openai.batch`, batch-keep.js); one that had not
// ended when serve stopped is taken up again at the next start (its lines sent again with the same
// idempotency keys: they join their records, never a second one).

const { createHash, randomBytes } = require('node:crypto')
const { WireError, invalid, openaiErrorBody } = require('./errors.js')
const { chatCompletion, chatRequest } = require('./openai-chat.js')
const { embeddingsAnswer, embeddingsRequest, readEmbeddings } = require('./openai-embeddings.js')
const { BatchRun, doorSubmit, neverRan } = require('./batch-run.js')
const { BatchKeeper } = require('./batch-keep.js')
const { WIRE } = require('../settle.js')
const { newId, page } = require('./files.js')

const ENDPOINTS = new Set(['/v1/chat/completions', '/v1/embeddings'])
const ENDED = new Set(['completed', 'failed', 'cancelled', 'expired'])
const KIND = 'openai.batch'
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
const now = () => Math.floor(Date.now() / 1000)

/**
 * The requests of an input file, each checked as the per-call wire checks its body: `{ lines,
 * errors }`, `errors` in OpenAI's batch error shape (`{ code, message, param, line }`, line from 1).
 */
function readInput(bytes, endpoint, modelIdOf) {
  const errors = []
  const lines = []
  const seen = new Map()
  for (const [i, raw] of bytes.toString('utf8').split('\n').entries()) {
    if (raw.trim() === '') continue
    const out = readLine(raw, i + 1, endpoint, modelIdOf, seen)
    if (out.error) errors.push({ param: null, ...out.error, line: i + 1 })
    else lines.push(out)
  }
  if (errors.length === 0 && lines.length === 0)
    errors.push({ code: 'empty_file', message: 'The input file has no requests.', param: null, line: null })
  return { lines, errors }
}

/** One line of an input file as a request to send, or `{ error: { code, message, param } }`. */
function readLine(raw, line, endpoint, modelIdOf, seen) {
  const fail = (code, message, param = null) => ({ error: { code, message, param } })
  let req
  try {
    req = JSON.parse(raw)
  } catch (err) {
    return fail('invalid_json_line', `Line ${line} is not valid JSON: ${err.message}`)
  }
  if (!isObject(req)) return fail('invalid_json_line', `Line ${line} must be a JSON object.`)
  const id = req.custom_id
  if (typeof id !== 'string' || id.length < 1 || id.length > 64)
    return fail('invalid_custom_id', `Line ${line}: custom_id must be a string of 1 to 64 characters.`, 'custom_id')
  if (seen.has(id))
    return fail(
      'duplicate_custom_id',
      `Line ${line}: custom_id ${JSON.stringify(id)} is also on line ${seen.get(id)}; each must be unique in the file.`,
      'custom_id',
    )
  seen.set(id, line)
  if (req.method !== 'POST') return fail('invalid_method', `Line ${line}: method must be "POST".`, 'method')
  if (req.url !== endpoint)
    return fail(
      'mismatched_endpoint',
      `Line ${line}: url ${JSON.stringify(req.url)} is not the batch's endpoint ${endpoint}.`,
      'url',
    )
  if (!isObject(req.body)) return fail('invalid_request', `Line ${line}: body must be a JSON object.`, 'body')
  const model = req.body.model
  if (typeof model !== 'string' || model === '')
    return fail('missing_required_parameter', `Line ${line}: body.model is required.`, 'body.model')
  try {
    const modelId = modelIdOf(model)
    if (endpoint === '/v1/chat/completions') {
      if (req.body.stream === true)
        throw invalid('stream', 'stream is not supported in a batch (the answer is a chat.completion).')
      return { id, line, model, modelId, chat: chatRequest({ ...req.body, stream: false }) }
    }
    return { id, line, model, modelId, emb: embeddingsRequest(req.body, modelId) }
  } catch (err) {
    if (!(err instanceof WireError)) throw err
    return fail(err.code ?? 'invalid_request', `Line ${line}: ${err.message}`, err.param ? `body.${err.param}` : 'body')
  }
}

/** The id of a batch's output or error file: the same whichever process writes it. */
function resultFileId(batchId, which) {
  return `file-${createHash('sha256').update(`${batchId}:${which}`).digest('hex').slice(0, 24)}`
}

function notFound(id) {
  return new WireError(404, `No batch found with id '${id}'.`, { param: 'batch_id', code: 'batch_not_found' })
}

class OpenAIBatches {
  /**
   * `door`; `files`: the FileStore; `modelIdOf(model)`: a wire model name as a Bedrock model id;
   * `objects`: where batches are kept (objects.js); `onError(err)`: a write to it that failed.
   */
  constructor(door, files, modelIdOf, objects, onError = () => {}) {
    this._door = door
    this._files = files
    this._modelIdOf = modelIdOf
    this._keep = new BatchKeeper(objects, KIND, { view: (state) => this._view(state), onError })
  }

  /** `POST /v1/batches`: kept before a line is sent. */
  async create(body) {
    if (!isObject(body)) throw invalid(null, 'The request body must be a JSON object.')
    const { input_file_id: fileId, endpoint, completion_window: window, metadata } = body
    if (typeof fileId !== 'string' || fileId === '')
      throw invalid('input_file_id', "Missing required parameter: 'input_file_id'.")
    if (!ENDPOINTS.has(endpoint))
      throw invalid(
        'endpoint',
        `endpoint must be one of ${[...ENDPOINTS].join(', ')} here, not ${JSON.stringify(endpoint)}.`,
      )
    if (window !== '24h') throw invalid('completion_window', 'completion_window must be "24h".')
    if (metadata !== undefined && metadata !== null && !isObject(metadata))
      throw invalid('metadata', 'metadata must be an object of strings.')
    const file = await this._files.get(fileId)
    if (file.purpose !== 'batch')
      throw invalid('input_file_id', `File ${fileId} has purpose ${file.purpose}, not "batch".`)
    const bytes = await this._files.content(fileId)
    const created = now()
    const b = {
      id: newId('batch_'),
      object: 'batch',
      endpoint,
      errors: null,
      input_file_id: fileId,
      completion_window: '24h',
      status: 'validating',
      output_file_id: null,
      error_file_id: null,
      created_at: created,
      in_progress_at: null,
      expires_at: created + 24 * 3600,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
      metadata: metadata ?? null,
    }
    const state = { object: b, run: null, lines: [] }
    const { lines, errors } = readInput(bytes, endpoint, this._modelIdOf)
    if (errors.length) {
      b.status = 'failed'
      b.failed_at = created
      b.errors = { object: 'list', data: errors }
      state.ended = true
      await this._keep.save(state)
      this._keep.live.set(b.id, state)
      return b
    }
    state.lines = lines
    b.request_counts.total = lines.length
    await this._keep.save(state)
    this._run(state, [])
    return this._view(state)
  }

  /** Sends a batch's lines (`jobs`: the ARNs of jobs known to hold them) and ends it once they settle. */
  _run(state, jobs) {
    state.run = new BatchRun(
      this._door,
      state.lines.map((l) => ({ id: l.id, modelId: l.modelId, submit: this._submitter(l) })),
      `openai-batch:${state.object.id}`,
      { jobs },
    )
    this._keep.track(state)
    state.done = state.run.done
      .then(() => this._keep.ending(() => this._finish(state)))
      .catch((err) => this._broken(state, err))
  }

  /**
   * Takes up a batch that had not ended (after a restart, or another process's to cancel it): its
   * lines, read again from its input file, sent again with the same idempotency keys. A cancel
   * that was under way goes on.
   */
  async _takeUp(record) {
    const b = record.object
    const known = this._keep.live.get(b.id)
    if (known) return known
    const state = { object: b, run: null, lines: [], saved: JSON.stringify(record) }
    this._keep.live.set(b.id, state)
    let bytes
    try {
      bytes = await this._files.content(b.input_file_id)
    } catch (err) {
      if (!(err instanceof WireError && err.status === 404)) {
        // The store failed: taken up at the next start (or cancel).
        this._keep.live.delete(b.id)
        throw err
      }
    }
    const read = bytes ? readInput(bytes, b.endpoint, this._modelIdOf) : null
    if (!read || read.errors.length) {
      // Deleted meanwhile, or no longer what it was: the batch cannot go on.
      const why = read ? `no longer reads as it did (${read.errors[0].message})` : 'was deleted'
      await this._broken(state, `The batch could not be taken up again after a restart: its input file ${why}.`)
      return state
    }
    const lines = read.lines
    state.lines = lines
    this._run(state, record.jobs ?? [])
    if (b.status === 'cancelling') state.run.cancel().catch(() => {})
    return state
  }

  /** Takes up every batch kept that had not ended (at a start with a store). */
  async takeUp() {
    const records = await this._keep.list()
    for (const record of records)
      if (!ENDED.has(record.object.status)) await this._takeUp(record).catch((err) => this._keep.onError(err))
  }

  /** How a line is sent: chat as Converse; embeddings as the InvokeModel record(s) of its inputs. */
  _submitter(l) {
    if (l.chat) return doorSubmit(this._door, 'Converse', l.modelId, Buffer.from(JSON.stringify(l.chat.converse)))
    return (options, signal) =>
      Promise.all(
        l.emb.records.map((record, i) =>
          this._door.submit(
            WIRE,
            'InvokeModel',
            l.modelId,
            record,
            { ...options, idempotencyKey: `${options.idempotencyKey}:${i}` },
            signal,
          ),
        ),
      ).then((outs) => ({ outs, requestId: outs[0]?.requestId }))
  }

  /** A batch's object: as it runs here, else as kept (a restart's, another process's). */
  async _object(id) {
    const state = this._keep.live.get(id)
    if (state) return this._view(state)
    const record = await this._keep.read(id)
    if (!record) throw notFound(id)
    return record.object
  }

  /** The batch object as it is now (status and counts from its lines and jobs). */
  _view(state) {
    const b = state.object
    if (!state.run || state.ended) return b
    let completed = 0
    let failed = 0
    for (const r of state.run.results.values()) r.ok ? completed++ : failed++
    b.request_counts = { total: state.lines.length, completed, failed }
    if (state.run.cancelRequested) return b
    const phase = state.run.phase()
    if (phase === 'in_progress' && b.status === 'validating') {
      b.status = 'in_progress'
      b.in_progress_at = now()
    }
    return b
  }

  /** The line of the output or error file for one line's result. */
  _outputLine(state, l, r) {
    const id = `batch_req_${randomBytes(12).toString('hex')}`
    if (r.ok) {
      const requestId = r.value.requestId ?? null
      let body
      if (l.chat) {
        body = chatCompletion(JSON.parse(r.value.body.toString('utf8')), {
          id: `chatcmpl-${randomBytes(12).toString('hex')}`,
          created: now(),
          model: l.model,
        })
      } else {
        const read = readEmbeddings(
          l.emb.kind,
          r.value.outs.map((o) => o.body),
        )
        body = embeddingsAnswer(read, { model: l.model, base64: l.emb.base64 })
      }
      return {
        ok: true,
        line: { id, custom_id: l.id, response: { status_code: 200, request_id: requestId, body }, error: null },
      }
    }
    const never = neverRan(state.run, r)
    if (never)
      return {
        ok: false,
        line: {
          id,
          custom_id: l.id,
          response: null,
          error: {
            code: `batch_${never}`,
            message:
              never === 'cancelled'
                ? 'This request was not run: the batch was cancelled.'
                : 'This request was not run: the batch expired before it was processed.',
          },
        },
      }
    const { status, body } = openaiErrorBody(r.error)
    return {
      ok: false,
      line: {
        id,
        custom_id: l.id,
        response: { status_code: status, request_id: r.error?.$metadata?.requestId ?? null, body },
        error: null,
      },
    }
  }

  /** A batch that cannot end as it should (its output could not be written): failed, saying why (never a line's body). */
  async _broken(state, why) {
    if (this._keep.closed) return
    const b = state.object
    state.ended = true
    b.status = 'failed'
    b.failed_at = now()
    b.errors = {
      object: 'list',
      data: [
        {
          code: 'server_error',
          message: typeof why === 'string' ? why : `The output could not be written: ${why?.message}`,
          param: null,
          line: null,
        },
      ],
    }
    await this._ended(state)
  }

  /** An ended batch: kept as it ended, and only its object held here. */
  async _ended(state) {
    state.jobs = state.run?.jobArns() ?? state.jobs
    state.run = null
    state.lines = []
    // A write that fails is made again at the next tick.
    await this._keep.saveLater(state)
  }

  /**
   * Once every line settled: the output and error files (`finalizing` meanwhile; a thousand
   * lines per turn of the event loop), the counts and the final status. A batch another process
   * of the group ended meanwhile is taken as it ended there; one it was asked to cancel is
   * cancelled.
   */
  async _finish(state) {
    if (this._keep.closed) return
    const kept = await this._keep.read(state.object.id).catch(() => null)
    if (kept && ENDED.has(kept.object.status)) {
      state.object = kept.object
      state.ended = true
      state.saved = JSON.stringify(kept)
      return this._ended(state)
    }
    if (kept?.object.status === 'cancelling' && !state.run.cancelRequested) {
      state.run.cancelRequested = true
      Object.assign(state.object, { status: 'cancelling', cancelling_at: kept.object.cancelling_at })
    }
    const b = this._view(state)
    const cancelled = state.run.cancelRequested
    if (!cancelled) {
      if (!b.in_progress_at) b.in_progress_at = now()
      b.status = 'finalizing'
      b.finalizing_at = now()
    }
    const out = []
    const err = []
    let expired = 0
    let jobFailed = 0
    for (const [i, l] of state.lines.entries()) {
      if (i > 0 && i % 1000 === 0) await new Promise((resolve) => setImmediate(resolve))
      const r = state.run.results.get(l.id)
      let built
      try {
        built = this._outputLine(state, l, r)
      } catch (error) {
        // An answer that is not the wire's object: an error line (never its bytes).
        const message = `The model's answer could not be read: ${error.message}`
        built = this._outputLine(state, l, { ok: false, error: new WireError(500, message, { type: 'server_error' }) })
      }
      const { ok, line } = built
      ;(ok ? out : err).push(JSON.stringify(line))
      if (line.error?.code === 'batch_expired') expired++
      if (!ok && r.error?.name === 'BatchJobFailedException' && r.error.status === 'Failed') jobFailed++
    }
    const write = async (which, rows) => {
      const bytes = Buffer.from(`${rows.join('\n')}\n`)
      return (await this._files.add(`${b.id}_${which}.jsonl`, 'batch_output', bytes, resultFileId(b.id, which))).id
    }
    const outputId = out.length ? await write('output', out) : null
    const errorId = err.length ? await write('error', err) : null
    b.output_file_id = outputId
    b.error_file_id = errorId
    b.request_counts = { total: state.lines.length, completed: out.length, failed: err.length }
    state.ended = true
    const t = now()
    if (cancelled) {
      b.status = 'cancelled'
      b.cancelled_at = t
    } else if (expired > 0) {
      b.status = 'expired'
      b.expired_at = t
    } else if (out.length === 0 && jobFailed === state.lines.length) {
      b.status = 'failed'
      b.failed_at = t
      const message = state.run.results.values().next().value?.error?.message ?? 'The batch job failed.'
      b.errors = { object: 'list', data: [{ code: 'batch_job_failed', message, param: null, line: null }] }
    } else {
      b.status = 'completed'
      b.completed_at = t
    }
    await this._ended(state)
  }

  /** `GET /v1/batches/{id}`. */
  retrieve(id) {
    return this._object(id)
  }

  /**
   * `POST /v1/batches/{id}/cancel`: `cancelling` at once (kept so), `cancelled` once the lines still
   * running have ended. A batch another process of the group runs is taken up here to cancel it.
   */
  async cancel(id) {
    let state = this._keep.live.get(id)
    if (!state) {
      const record = await this._keep.read(id)
      if (!record) throw notFound(id)
      state = ENDED.has(record.object.status) ? { object: record.object, ended: true } : await this._takeUp(record)
    }
    const b = this._view(state)
    if (!state.run || state.ended) {
      if (b.status === 'cancelled') return b
      throw new WireError(409, `Cannot cancel a batch with status '${b.status}'.`, { code: 'batch_not_cancellable' })
    }
    if (!state.run.cancelRequested) {
      // Kept first: a restart goes on with the cancel.
      const was = { status: b.status, cancelling_at: b.cancelling_at }
      b.status = 'cancelling'
      b.cancelling_at = now()
      try {
        await this._keep.save(state)
      } catch (err) {
        Object.assign(b, was)
        throw err
      }
      state.run.cancel().catch(() => {})
    }
    return b
  }

  /** `GET /v1/batches`: newest first, `limit` (1–100, 20), `after`. */
  async list(query) {
    const items = (await this._keep.list()).reverse().map((r) => {
      const state = this._keep.live.get(r.object.id)
      return state ? this._view(state) : r.object
    })
    const { data, has_more } = page(items, { limit: query.get('limit'), after: query.get('after') })
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more }
  }

  /** Serve stops: the batches that had not ended stay so in the store (the next start takes them up). */
  close() {
    this._keep.close()
  }
}

module.exports = { OpenAIBatches, readInput }
