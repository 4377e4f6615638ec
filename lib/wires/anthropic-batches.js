'use strict'
// Anthropic Message Batches: `POST /v1/messages/batches`, `GET /v1/messages/batches/{id}`,
// `GET /v1/messages/batches` (paged by `before_id`/`after_id`), `POST …/{id}/cancel`,
// `DELETE …/{id}` and `GET …/{id}/results` (the batch's `results_url`, JSONL, once it ended).
// Each request's `params` is a Messages body, sent through the door as /v1/messages sends it (an
// InvokeModel record of Claude's native body). State in memory (a restart loses batches).

const { WireError, anthropicErrorBody, invalid } = require('./errors.js')
const { messageAnswer, messagesRequest } = require('./anthropic-messages.js')
const { BatchRun, doorSubmit, neverRan } = require('./batch-run.js')
const { newId, page } = require('./files.js')

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
const iso = (ms) => new Date(ms).toISOString()
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/

/** At most this many requests in one batch (Anthropic's limit). */
const MAX_REQUESTS = 100_000

class AnthropicBatches {
  /** `door`; `modelIdOf(model)`: a wire model name as a Bedrock model id. */
  constructor(door, modelIdOf) {
    this._door = door
    this._modelIdOf = modelIdOf
    /** id → batch state, in creation order. */
    this._batches = new Map()
  }

  /** `POST /v1/messages/batches`: every request checked first (a 400 naming the first at fault). */
  create(body, baseUrl, beta) {
    if (!isObject(body)) throw invalid(null, 'The request body must be a JSON object.')
    const { requests } = body
    if (!Array.isArray(requests) || requests.length === 0)
      throw invalid('requests', 'requests: a non-empty list of { custom_id, params } is required')
    if (requests.length > MAX_REQUESTS)
      throw invalid('requests', `requests: at most ${MAX_REQUESTS} requests in one batch`)
    const seen = new Map()
    const lines = requests.map((r, i) => {
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
      return { id: r.custom_id, model: req.model, modelId: this._modelIdOf(req.model), record: req.record }
    })
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
    const state = { object: b, lines, results: null, resultsUrl: `${baseUrl}/v1/messages/batches/${id}/results` }
    this._batches.set(id, state)
    state.run = new BatchRun(
      this._door,
      lines.map((l) => ({
        id: l.id,
        modelId: l.modelId,
        submit: doorSubmit(this._door, 'InvokeModel', l.modelId, l.record),
      })),
      `anthropic-batch:${id}`,
    )
    state.run.done
      .then(() => this._finish(state))
      .catch((err) => {
        // Every request errored, saying why (never a request's body).
        state.run.results.clear()
        for (const l of lines) state.run.results.set(l.id, { ok: false, error: err })
        this._finish(state)
      })
    return this._view(state)
  }

  _get(id) {
    const s = this._batches.get(id)
    if (!s) throw new WireError(404, `No message batch with id ${JSON.stringify(id)}.`, { type: 'not_found_error' })
    return s
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
    if (state.results) return b
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

  _finish(state) {
    const b = state.object
    const counts = { processing: 0, succeeded: 0, errored: 0, canceled: 0, expired: 0 }
    const rows = []
    for (const l of state.lines) {
      const result = this._result(state, l, state.run.results.get(l.id))
      counts[result.type]++
      rows.push(JSON.stringify({ custom_id: l.id, result }))
    }
    state.results = Buffer.from(`${rows.join('\n')}\n`)
    b.request_counts = counts
    b.processing_status = 'ended'
    b.ended_at = new Date().toISOString()
    b.results_url = state.resultsUrl
  }

  retrieve(id) {
    return this._view(this._get(id))
  }

  /** `POST …/{id}/cancel`: `canceling` until the requests still running have ended. */
  cancel(id) {
    const state = this._get(id)
    const b = this._view(state)
    if (b.processing_status === 'in_progress') {
      b.processing_status = 'canceling'
      b.cancel_initiated_at = new Date().toISOString()
      state.run.cancel().catch(() => {})
    }
    return b
  }

  /** `DELETE …/{id}`: only an ended batch. */
  delete(id) {
    const state = this._get(id)
    if (state.object.processing_status !== 'ended')
      throw invalid(null, `Message batch ${id} has not ended: cancel it and wait until it ends before deleting it.`)
    this._batches.delete(id)
    return { id, type: 'message_batch_deleted' }
  }

  /** `GET …/{id}/results`: the results as JSONL, once the batch ended. */
  results(id) {
    const state = this._get(id)
    if (!state.results)
      throw invalid(
        null,
        `Message batch ${id} has not ended yet: its results are ready once processing_status is "ended".`,
      )
    return state.results
  }

  /** `GET /v1/messages/batches`: newest first, `limit` (1–1000, 20), `before_id`, `after_id`. */
  list(query) {
    const items = [...this._batches.values()].reverse().map((s) => this._view(s))
    const { data, has_more } = page(items, {
      limit: query.get('limit'),
      after: query.get('after_id'),
      before: query.get('before_id'),
      max: 1000,
      names: ['limit', 'after_id', 'before_id'],
    })
    return { data, has_more, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
  }
}

module.exports = { AnthropicBatches }
