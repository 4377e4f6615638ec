'use strict'
// Anthropic Message Batches: `POST /v1/messages/batches`, `GET /v1/messages/batches/{id}`,
// `GET /v1/messages/batches` (paged by `before_id`/`after_id`), `POST …/{id}/cancel`,
// `DELETE …/{id}` and `GET …/{id}/results` (the batch's `results_url`, JSONL, once it ended).
// Each request's `params` is a Messages body, sent through the door as /v1/messages sends it (an
// InvokeModel record of Claude's native body). Kept in the store of objects: the batch
// (`anthropic.batch`, batch-keep.js), its requests (`anthropic.batch.requests`, written once) and its
// results (`anthropic.batch.results`, written once it ended); one that had not ended when serve
// stopped is taken up again at the next start (its requests sent again with the same idempotency
// keys: they join their records, never a second one).

const { WireError, anthropicErrorBody, invalid } = require('./errors.js')
const { messageAnswer, messagesRequest } = require('./anthropic-messages.js')
const { BatchRun, doorSubmit, neverRan } = require('./batch-run.js')
const { BatchKeeper } = require('./batch-keep.js')
const { newId, page } = require('./files.js')
const { getJson, putJson } = require('./objects.js')

const KIND = 'anthropic.batch'
const REQUESTS = 'anthropic.batch.requests'
const RESULTS = 'anthropic.batch.results'

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
const iso = (ms) => new Date(ms).toISOString()
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/

/** At most this many requests in one batch (Anthropic's limit). */
const MAX_REQUESTS = 100_000

/** The requests of a batch as they are sent (a 400 naming the first at fault). */
function readRequests(requests, beta, modelIdOf) {
  const seen = new Map()
  return requests.map((r, i) => {
    const at = `requests.${i}`
    if (!isObject(r)) throw invalid(at, `${at}: must be an object with custom_id and params`)
    if (typeof r.custom_id !== 'string' || !CUSTOM_ID.test(r.custom_id))
      throw invalid(`${at}.custom_id`, `${at}.custom_id: 1 to 64 characters of letters, digits, _ and -`)
    if (seen.has(r.custom_id))
      throw invalid(
        `${at}.custom_id`,
        `${at}.custom_id: ${JSON.stringify(r.custom_id)} is also requests.${seen.get(r.custom_id)}.custom_id; custom_id values must be unique`,
      )
    seen.set(r.custom_id, i)
    if (!isObject(r.params)) throw invalid(`${at}.params`, `${at}.params: Field required`)
    if (r.params.stream === true)
      throw invalid(`${at}.params.stream`, `${at}.params.stream: streaming is not supported in a batch`)
    let req
    try {
      req = messagesRequest(r.params, beta)
    } catch (err) {
      if (err instanceof WireError) throw invalid(`${at}.params.${err.param}`, `${at}.params.${err.message}`)
      throw err
    }
    return { id: r.custom_id, model: req.model, modelId: modelIdOf(req.model), record: req.record }
  })
}

function notFound(id) {
  return new WireError(404, `No message batch with id ${JSON.stringify(id)}.`, { type: 'not_found_error' })
}

class AnthropicBatches {
  /**
   * `door`; `modelIdOf(model)`: a wire model name as a Bedrock model id; `objects`: where batches
   * are kept (objects.js); `onError(err)`: a write to it that failed.
   */
  constructor(door, modelIdOf, objects, onError = () => {}) {
    this._door = door
    this._modelIdOf = modelIdOf
    this._objects = objects
    this._keep = new BatchKeeper(objects, KIND, { view: (state) => this._view(state), onError })
  }

  /** `POST /v1/messages/batches`: every request checked first (a 400 naming the first at fault); kept before one is sent. */
  async create(body, baseUrl, beta) {
    if (!isObject(body)) throw invalid(null, 'The request body must be a JSON object.')
    const { requests } = body
    if (!Array.isArray(requests) || requests.length === 0)
      throw invalid('requests', 'requests: a non-empty list of { custom_id, params } is required')
    if (requests.length > MAX_REQUESTS)
      throw invalid('requests', `requests: at most ${MAX_REQUESTS} requests in one batch`)
    const lines = readRequests(requests, beta, this._modelIdOf)
    const created = Date.now()
    const id = newId('msgbatch_')
    const b = {
      id,
      type: 'message_batch',
      processing_status: 'in_progress',
      request_counts: { processing: lines.length, succeeded: 0, errored: 0, canceled: 0, expired: 0 },
      ended_at: null,
      created_at: iso(created),
      expires_at: iso(created + 24 * 3600 * 1000),
      archived_at: null,
      cancel_initiated_at: null,
      results_url: null,
    }
    const state = { object: b, lines, run: null }
    await putJson(this._objects, REQUESTS, id, {
      beta: beta ?? null,
      requests: requests.map((r) => ({ custom_id: r.custom_id, params: r.params })),
    })
    await this._keep.save(state)
    this._run(state, [])
    return this._shown(this._view(state), baseUrl)
  }

  /** Sends a batch's requests (`jobs`: the ARNs of jobs known to hold them) and ends it once they settle. */
  _run(state, jobs) {
    state.run = new BatchRun(
      this._door,
      state.lines.map((l) => ({
        id: l.id,
        modelId: l.modelId,
        submit: doorSubmit(this._door, 'InvokeModel', l.modelId, l.record),
      })),
      `anthropic-batch:${state.object.id}`,
      { jobs },
    )
    this._keep.track(state)
    state.run.done
      .then(() => this._keep.ending(() => this._finish(state)))
      .catch((err) => {
        // Its results could not be written: every request errored, saying why (never a request's body).
        const error = new WireError(500, `The results could not be written: ${err?.message}`, { type: 'api_error' })
        for (const l of state.lines) state.run.results.set(l.id, { ok: false, error })
        return this._finish(state)
      })
      .catch(() => {})
  }

  /**
   * Takes up a batch that had not ended (after a restart, or another process's to cancel it): its
   * requests, read again from the store, sent again with the same idempotency keys. A cancel that
   * was under way goes on.
   */
  async _takeUp(record) {
    const b = record.object
    const known = this._keep.live.get(b.id)
    if (known) return known
    const state = { object: b, lines: [], run: null, saved: JSON.stringify(record) }
    this._keep.live.set(b.id, state)
    let kept
    try {
      kept = await getJson(this._objects, REQUESTS, b.id)
    } catch (err) {
      // The store failed: taken up at the next start (or cancel).
      this._keep.live.delete(b.id)
      throw err
    }
    let lines
    try {
      if (!kept) throw new Error('its requests are not in the store')
      lines = readRequests(kept.requests, kept.beta ?? undefined, this._modelIdOf)
    } catch (err) {
      // Every request errored, saying why.
      const error = new WireError(500, `The batch could not be taken up again: ${err.message}`, { type: 'api_error' })
      state.lines = (kept?.requests ?? []).map((r) => ({ id: r.custom_id }))
      const results = new Map(state.lines.map((l) => [l.id, { ok: false, error }]))
      state.run = { results, cancelRequested: false, jobArns: () => [], jobStatus: () => undefined }
      this._keep.ending(() => this._finish(state)).catch((e) => this._keep.onError(e))
      return state
    }
    state.lines = lines
    this._run(state, record.jobs ?? [])
    if (b.processing_status === 'canceling') state.run.cancel().catch(() => {})
    return state
  }

  /** Takes up every batch kept that had not ended (at a start with a store). */
  async takeUp() {
    for (const record of await this._keep.list())
      if (record.object.processing_status !== 'ended')
        await this._takeUp(record).catch((err) => this._keep.onError(err))
  }

  /** A batch's object: as it runs here, else as kept (a restart's, another process's). */
  async _object(id) {
    const state = this._keep.live.get(id)
    if (state) return this._view(state)
    const record = await this._keep.read(id)
    if (!record) throw notFound(id)
    return record.object
  }

  /** The batch object as served: `results_url` on this server (as the caller reached it) once it ended. */
  _shown(b, baseUrl) {
    return {
      ...b,
      results_url: b.processing_status === 'ended' ? `${baseUrl}/v1/messages/batches/${b.id}/results` : null,
    }
  }

  /** The result of one request (Anthropic's `result`), and which count it goes in. */
  _result(state, l, r) {
    if (r.ok) {
      try {
        return { type: 'succeeded', message: messageAnswer(r.value.body, l.model) }
      } catch (err) {
        // An answer that is not a Message (never its bytes in the error).
        const message = `The model's answer could not be read: ${err.message}`
        return { type: 'errored', error: { type: 'error', error: { type: 'api_error', message } } }
      }
    }
    const never = neverRan(state.run, r)
    if (never === 'cancelled') return { type: 'canceled' }
    if (never === 'expired') return { type: 'expired' }
    return { type: 'errored', error: anthropicErrorBody(r.error).body }
  }

  _view(state) {
    const b = state.object
    if (state.ended || !state.run) return b
    let succeeded = 0
    let errored = 0
    for (const r of state.run.results.values()) r.ok ? succeeded++ : errored++
    // Until it ends, the lines cancelled or expired are not told apart from errors.
    b.request_counts = {
      processing: state.lines.length - succeeded - errored,
      succeeded,
      errored,
      canceled: 0,
      expired: 0,
    }
    return b
  }

  /**
   * Once every request settled: its results, then the batch as ended. A batch another process of
   * the group ended meanwhile is taken as it ended there; one it was asked to cancel is cancelled.
   */
  async _finish(state) {
    if (this._keep.closed) return
    const kept = await this._keep.read(state.object.id).catch(() => null)
    if (kept?.object.processing_status === 'ended') {
      state.object = kept.object
      return this._ended(state)
    }
    if (kept?.object.processing_status === 'canceling' && !state.run.cancelRequested) {
      state.run.cancelRequested = true
      Object.assign(state.object, {
        processing_status: 'canceling',
        cancel_initiated_at: kept.object.cancel_initiated_at,
      })
    }
    const b = state.object
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 }
    const rows = []
    for (const l of state.lines) {
      const result = this._result(state, l, state.run.results.get(l.id))
      counts[result.type]++
      rows.push(JSON.stringify({ custom_id: l.id, result }))
    }
    await this._objects.put(RESULTS, b.id, Buffer.from(`${rows.join('\n')}\n`))
    b.request_counts = counts
    b.processing_status = 'ended'
    b.ended_at = new Date().toISOString()
    return this._ended(state)
  }

  /** An ended batch: kept as it ended, and only its object held here. */
  async _ended(state) {
    state.ended = true
    state.jobs = state.run?.jobArns() ?? state.jobs
    state.run = null
    state.lines = []
    // A write that fails is made again at the next tick.
    await this._keep.saveLater(state)
  }

  async retrieve(id, baseUrl) {
    return this._shown(await this._object(id), baseUrl)
  }

  /**
   * `POST …/{id}/cancel`: `canceling` (kept so) until the requests still running have ended. A
   * batch another process of the group runs is taken up here to cancel it.
   */
  async cancel(id, baseUrl) {
    let state = this._keep.live.get(id)
    if (!state) {
      const record = await this._keep.read(id)
      if (!record) throw notFound(id)
      if (record.object.processing_status === 'ended') return this._shown(record.object, baseUrl)
      state = await this._takeUp(record)
    }
    const b = this._view(state)
    if (b.processing_status === 'in_progress' && state.run && !state.ended) {
      // Kept first: a restart goes on with the cancel.
      const was = { processing_status: b.processing_status, cancel_initiated_at: b.cancel_initiated_at }
      b.processing_status = 'canceling'
      b.cancel_initiated_at = new Date().toISOString()
      try {
        await this._keep.save(state)
      } catch (err) {
        Object.assign(b, was)
        throw err
      }
      state.run.cancel().catch(() => {})
    }
    return this._shown(b, baseUrl)
  }

  /** `DELETE …/{id}`: only an ended batch (its requests and results with it). */
  async delete(id) {
    const b = await this._object(id)
    if (b.processing_status !== 'ended')
      throw invalid(null, `Message batch ${id} has not ended: cancel it and wait until it ends before deleting it.`)
    await this._keep.delete(id)
    await this._objects.delete(RESULTS, id)
    await this._objects.delete(REQUESTS, id)
    return { id, type: 'message_batch_deleted' }
  }

  /** `GET …/{id}/results`: the results as JSONL, once the batch ended. */
  async results(id) {
    const b = await this._object(id)
    const results = b.processing_status === 'ended' ? await this._objects.get(RESULTS, id) : null
    if (!results)
      throw invalid(
        null,
        `Message batch ${id} has not ended yet: its results are ready once processing_status is "ended".`,
      )
    return results
  }

  /** `GET /v1/messages/batches`: newest first, `limit` (1–1000, 20), `before_id`, `after_id`. */
  async list(query, baseUrl) {
    const items = (await this._keep.list()).reverse().map((r) => {
      const state = this._keep.live.get(r.object.id)
      return this._shown(state ? this._view(state) : r.object, baseUrl)
    })
    const { data, has_more } = page(items, {
      limit: query.get('limit'),
      after: query.get('after_id'),
      before: query.get('before_id'),
      max: 1000,
      names: ['limit', 'after_id', 'before_id'],
    })
    return { data, has_more, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
  }

  /** Serve stops: the batches that had not ended stay so in the store (the next start takes them up). */
  close() {
    this._keep.close()
  }
}

module.exports = { AnthropicBatches }
