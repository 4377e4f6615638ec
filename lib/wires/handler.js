'use strict'
// The OpenAI and Anthropic wires of `serve`: `POST /v1/chat/completions`, `POST /v1/embeddings`,
// `GET /v1/models` (OpenAI) and `POST /v1/messages` (Anthropic), each call sent through the door
// as the Bedrock operation it maps onto (so concurrent calls share batch jobs as Bedrock-wire
// calls do), its answer in its wire's shapes. Auth (API keys), retries (calls.js), streams with
// keep-alives (sse.js); the translations are in openai-chat.js, openai-embeddings.js and
// anthropic-messages.js.

const { WIRE } = require('../settle.js')
const {
  anthropicError,
  anthropicErrorBody,
  invalid,
  openaiError,
  openaiErrorBody,
  statusOf,
  WireError,
} = require('./errors.js')
const { keyChecker } = require('./auth.js')
const { CallTable, callKey, retryable } = require('../calls.js')
const { chatCompletion, chatRequest, chunker } = require('./openai-chat.js')
const { embeddingsAnswer, embeddingsRequest, readEmbeddings } = require('./openai-embeddings.js')
const { messageAnswer, messagesRequest, streamEvents } = require('./anthropic-messages.js')
const { FileStore } = require('./files.js')
const { MemoryObjects } = require('./objects.js')
const { OpenAIBatches } = require('./openai-batches.js')
const { AnthropicBatches } = require('./anthropic-batches.js')
const {
  ANTHROPIC_PING,
  KEEP_ALIVE_MS,
  OPENAI_PING,
  SSE_HEADERS,
  dataEvent,
  namedEvent,
  withKeepAlive,
} = require('./sse.js')

/** How long a streaming call waits for an early refusal (a bad body the engine rejects at once) before its 200 goes out. */
const EARLY_REFUSAL_MS = 100

const ROUTES = {
  'POST /v1/chat/completions': 'chat',
  'POST /v1/embeddings': 'embeddings',
  'GET /v1/models': 'models',
  'POST /v1/messages': 'messages',
  'POST /v1/files': 'files.create',
  'GET /v1/files': 'files.list',
  'POST /v1/batches': 'batches.create',
  'GET /v1/batches': 'batches.list',
  'POST /v1/messages/batches': 'msgbatches.create',
  'GET /v1/messages/batches': 'msgbatches.list',
}

/** Routes with an id: `[method, pattern, route]`, the id the pattern's first group. */
const ID_ROUTES = [
  ['GET', /^\/v1\/files\/([^/]+)$/, 'files.get'],
  ['DELETE', /^\/v1\/files\/([^/]+)$/, 'files.delete'],
  ['GET', /^\/v1\/files\/([^/]+)\/content$/, 'files.content'],
  ['GET', /^\/v1\/batches\/([^/]+)$/, 'batches.get'],
  ['POST', /^\/v1\/batches\/([^/]+)\/cancel$/, 'batches.cancel'],
  ['GET', /^\/v1\/messages\/batches\/([^/]+)$/, 'msgbatches.get'],
  ['DELETE', /^\/v1\/messages\/batches\/([^/]+)$/, 'msgbatches.delete'],
  ['POST', /^\/v1\/messages\/batches\/([^/]+)\/cancel$/, 'msgbatches.cancel'],
  ['GET', /^\/v1\/messages\/batches\/([^/]+)\/results$/, 'msgbatches.results'],
]

/** `name=modelId` entries (or an object of them) as a Map; a TypeError naming `modelMap` otherwise. */
function modelMapOf(value) {
  const map = new Map()
  if (value === undefined || value === null) return map
  const entries = Array.isArray(value)
    ? value.map((e) => {
        const i = typeof e === 'string' ? e.indexOf('=') : -1
        if (i <= 0 || i === e.length - 1)
          throw new TypeError(`model map entries are NAME=MODEL_ID, not ${JSON.stringify(e)}`)
        return [e.slice(0, i).trim(), e.slice(i + 1).trim()]
      })
    : typeof value === 'object'
      ? Object.entries(value)
      : null
  if (!entries) throw new TypeError('modelMap must be an object of { name: modelId } (or NAME=MODEL_ID entries)')
  for (const [name, id] of entries) {
    if (typeof id !== 'string' || id === '') throw new TypeError(`modelMap: ${name} must map to a model id`)
    map.set(name, id)
  }
  return map
}

/** Parsed JSON of a request body; a WireError (400) when it is not JSON. */
function parseBody(body) {
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new WireError(400, `The request body is not valid JSON: ${err.message}`)
  }
}

function jsonResponse(value, headers = {}) {
  return {
    status: 200,
    headers: { 'content-type': 'application/json', ...headers },
    body: Buffer.from(JSON.stringify(value)),
  }
}

/** The server's own URL as the caller reached it (its Host), for absolute links such as `results_url`. */
function baseUrl(request) {
  const host = request.header('host') ?? request.header(':authority') ?? 'localhost'
  return `http://${host}`
}

/** Resolves to 'refused' (with the error) when `promise` rejects within `ms`, else to 'pending' or 'settled'. */
function early(promise, ms) {
  let timer
  return Promise.race([
    promise.then(
      () => ({ state: 'settled' }),
      (error) => ({ state: 'refused', error }),
    ),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms, { state: 'pending' })
    }),
  ]).finally(() => clearTimeout(timer))
}

class WiresHandler {
  /**
   * `door`: the door calls go through; `apiKeys`: the keys callers must present (none: any caller);
   * `closed`: refuse every call (no key, beyond loopback);
   * `modelMap`: names → model ids; `keepAliveMs`: how often a waiting stream pings;
   * `clientTimeoutDeadline`: whether `X-Stainless-Timeout` is a non-streaming call's deadline;
   * `objects`: where the Batch APIs keep their files and batches (the door's `storeObjects()`;
   * without a store, in memory).
   */
  constructor(
    door,
    {
      apiKeys = [],
      closed = false,
      modelMap = new Map(),
      keepAliveMs = KEEP_ALIVE_MS,
      clientTimeoutDeadline = true,
      objects = new MemoryObjects(),
    },
  ) {
    this._door = door
    // Beyond loopback without a key, every call is refused.
    this._check = closed
      ? () => ({
          ok: false,
          message:
            'This server listens beyond loopback and has no API key: start it with --api-key KEY (or BEDROCK_BATCH_SERVE_API_KEYS) to take OpenAI and Anthropic calls.',
        })
      : keyChecker(apiKeys)
    this._models = modelMap
    this._keepAliveMs = keepAliveMs
    this._clientTimeoutDeadline = clientTimeoutDeadline
    this._calls = new CallTable((err) => !retryable(statusOf(err)))
    this._created = Math.floor(Date.now() / 1000)
    const modelIdOf = (model) => this._modelId(model)
    // A write that failed: the batch goes on here; logged by kind and id (never a body).
    const onError = (err) => {
      const log = door.options?.logger
      if (log && typeof log.warn === 'function')
        log.warn(
          `bedrock-batch-bridge: a batch could not be written to the store: ${err?.name ?? 'Error'}: ${err?.message}`,
        )
    }
    this._files = new FileStore(objects)
    this._batches = new OpenAIBatches(door, this._files, modelIdOf, objects, onError)
    this._msgBatches = new AnthropicBatches(door, modelIdOf, objects, onError)
  }

  /** Takes up the batches of the store that had not ended (at a start: a restart, or another process of a group). */
  async takeUp() {
    await this._batches.takeUp()
    await this._msgBatches.takeUp()
  }

  /** Whether a request is for these wires (any path under /v1/). */
  handles(pathname) {
    return pathname === '/v1' || pathname.startsWith('/v1/')
  }

  /** Answers `{ method, pathname, header(name), body }` with `{ status, headers, body }`. */
  async handle(request) {
    const { method, pathname, header } = request
    const query = request.query ?? new URLSearchParams()
    const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname
    const anthropic = path.startsWith('/v1/messages')
    const fail = anthropic ? anthropicError : openaiError
    let route = ROUTES[`${method} ${path}`]
    let modelId
    let id
    let badPath = false
    try {
      if (!route && method === 'GET' && path.startsWith('/v1/models/')) {
        route = 'model'
        modelId = decodeURIComponent(path.slice('/v1/models/'.length))
      }
      if (!route)
        for (const [m, pattern, r] of ID_ROUTES) {
          const found = method === m && pattern.exec(path)
          if (found) {
            route = r
            id = decodeURIComponent(found[1])
            break
          }
        }
    } catch {
      // A malformed %-escape in the id (a URIError): the caller's mistake, in the wire's shape.
      badPath = true
    }
    const auth = this._check(header)
    if (!auth.ok) return fail(new WireError(401, auth.message, { code: 'invalid_api_key' }))
    if (badPath) return fail(invalid(null, `The path ${JSON.stringify(pathname)} is not valid percent-encoding.`))
    if (!route)
      return fail(new WireError(404, `No route ${method} ${pathname} on this server.`, { code: 'unknown_url' }))
    try {
      switch (route) {
        case 'chat':
          return await this._chat(request, auth.credential)
        case 'embeddings':
          return await this._embeddings(request, auth.credential)
        case 'messages':
          return await this._messages(request, auth.credential)
        case 'files.create':
          return jsonResponse(await this._files.upload(request.header('content-type'), request.body))
        case 'files.list':
          return jsonResponse(await this._files.list(query))
        case 'files.get':
          return jsonResponse(await this._files.get(id))
        case 'files.content':
          return {
            status: 200,
            headers: { 'content-type': 'application/octet-stream' },
            body: await this._files.content(id),
          }
        case 'files.delete':
          return jsonResponse(await this._files.delete(id))
        case 'batches.create':
          return jsonResponse(await this._batches.create(parseBody(request.body)))
        case 'batches.list':
          return jsonResponse(await this._batches.list(query))
        case 'batches.get':
          return jsonResponse(await this._batches.retrieve(id))
        case 'batches.cancel':
          return jsonResponse(await this._batches.cancel(id))
        case 'msgbatches.create':
          if (!request.header('anthropic-version'))
            throw invalid('anthropic-version', 'anthropic-version: header is required')
          return jsonResponse(
            await this._msgBatches.create(parseBody(request.body), baseUrl(request), request.header('anthropic-beta')),
          )
        case 'msgbatches.list':
          return jsonResponse(await this._msgBatches.list(query, baseUrl(request)))
        case 'msgbatches.get':
          return jsonResponse(await this._msgBatches.retrieve(id, baseUrl(request)))
        case 'msgbatches.cancel':
          return jsonResponse(await this._msgBatches.cancel(id, baseUrl(request)))
        case 'msgbatches.delete':
          return jsonResponse(await this._msgBatches.delete(id))
        case 'msgbatches.results':
          return {
            status: 200,
            headers: { 'content-type': 'application/x-jsonl' },
            body: await this._msgBatches.results(id),
          }
        case 'models':
          return jsonResponse({ object: 'list', data: this._modelList() })
        default: {
          const found = this._modelList().find((m) => m.id === modelId)
          if (!found)
            throw new WireError(404, `The model ${JSON.stringify(modelId)} is not known here.`, {
              code: 'model_not_found',
            })
          return jsonResponse(found)
        }
      }
    } catch (err) {
      return fail(err)
    }
  }

  /** The Bedrock model id of a wire's `model`: a mapped name, else the id as given. */
  _modelId(model) {
    return this._models.get(model) ?? model
  }

  /** The mapped names, their models and the models this server's jobs ran (OpenAI's model objects). */
  _modelList() {
    const ids = new Map()
    for (const [name, id] of this._models) {
      ids.set(name, 'bedrock-batch-bridge')
      if (!ids.has(id)) ids.set(id, 'aws-bedrock')
    }
    if (this._door.started)
      for (const j of this._door.stats().jobs) if (!ids.has(j.modelId)) ids.set(j.modelId, 'aws-bedrock')
    return [...ids].map(([id, owner]) => ({ id, object: 'model', created: this._created, owned_by: owner }))
  }

  /**
   * The call of a request (a retry joins its first attempt): `submit(options)` sends it; the
   * options carry an idempotency key from the call's hash and, for a non-streaming call, the
   * deadline `X-Stainless-Timeout` (or `X-Stainless-Read-Timeout`) gives.
   */
  _call(route, request, credential, streaming, submit) {
    const key = callKey(route, credential, request.header('idempotency-key'), request.body)
    return this._calls.get(key, () => {
      const options = { idempotencyKey: `${route}:${key}` }
      // The JS SDKs send X-Stainless-Timeout (OpenAI's only for a per-request timeout); the Python
      // SDKs X-Stainless-Read-Timeout too (OpenAI's only that): seconds, either way.
      const timeout = [request.header('x-stainless-timeout'), request.header('x-stainless-read-timeout')]
        .map(Number)
        .find((n) => Number.isFinite(n) && n > 0)
      // A timeout so far away that its deadline is no number (1e308 s) is no deadline.
      const deadline = timeout === undefined ? undefined : Date.now() + timeout * 1000
      if (this._clientTimeoutDeadline && !streaming && Number.isFinite(deadline)) options.deadline = deadline
      try {
        return submit(options)
      } catch (err) {
        return Promise.reject(err)
      }
    }).call
  }

  async _chat(request, credential) {
    const req = chatRequest(parseBody(request.body))
    const modelId = this._modelId(req.model)
    const operation = req.stream ? 'ConverseStream' : 'Converse'
    const body = Buffer.from(JSON.stringify(req.converse))
    const call = this._call('openai-chat', request, credential, req.stream, (options) =>
      this._door.submit(WIRE, operation, modelId, body, options),
    )
    const shape = {
      id: `chatcmpl-${call.key.slice(0, 29)}`,
      created: Math.floor(call.started / 1000),
      model: req.model,
      includeUsage: req.includeUsage,
    }
    if (!req.stream) {
      const out = await call.answer
      return jsonResponse(
        chatCompletion(JSON.parse(out.body.toString('utf8')), {
          ...shape,
          serviceTier: out.serviceTier === 'flex' ? 'flex' : undefined,
        }),
      )
    }
    const first = await early(call.answer, EARLY_REFUSAL_MS)
    if (first.state === 'refused') throw first.error
    const events = async function* () {
      let out
      try {
        out = await call.answer
      } catch (err) {
        yield dataEvent(openaiErrorBody(err).body)
        return
      }
      const c = chunker(shape)
      try {
        for await (const item of call.replay(out).items())
          for (const chunk of c.chunks(JSON.parse(item))) yield dataEvent(chunk)
      } catch (err) {
        yield dataEvent(openaiErrorBody(err).body)
        return
      }
      for (const chunk of c.tail()) yield dataEvent(chunk)
      yield dataEvent('[DONE]')
    }
    return { status: 200, headers: { ...SSE_HEADERS }, body: withKeepAlive(events(), this._keepAliveMs, OPENAI_PING) }
  }

  async _embeddings(request, credential) {
    const parsed = parseBody(request.body)
    if (typeof parsed?.model !== 'string' || parsed.model === '') throw invalid('model', 'model is required.')
    const modelId = this._modelId(parsed.model)
    const req = embeddingsRequest(parsed, modelId)
    const call = this._call('openai-embeddings', request, credential, false, (options) =>
      Promise.all(
        req.records.map((record, i) =>
          this._door.submit(WIRE, 'InvokeModel', modelId, record, {
            ...options,
            idempotencyKey: `${options.idempotencyKey}:${i}`,
          }),
        ),
      ),
    )
    const outs = await call.answer
    const read = readEmbeddings(
      req.kind,
      outs.map((o) => o.body),
    )
    return jsonResponse(embeddingsAnswer(read, { model: parsed.model, base64: req.base64 }))
  }

  async _messages(request, credential) {
    if (!request.header('anthropic-version'))
      throw invalid('anthropic-version', 'anthropic-version: header is required')
    const req = messagesRequest(parseBody(request.body), request.header('anthropic-beta'))
    const modelId = this._modelId(req.model)
    const operation = req.stream ? 'InvokeModelWithResponseStream' : 'InvokeModel'
    const call = this._call('anthropic-messages', request, credential, req.stream, (options) =>
      this._door.submit(WIRE, operation, modelId, req.record, options),
    )
    const headers = { 'request-id': `req_${call.key.slice(0, 24)}` }
    if (!req.stream) {
      const out = await call.answer
      return jsonResponse(messageAnswer(out.body, req.model), headers)
    }
    const first = await early(call.answer, EARLY_REFUSAL_MS)
    if (first.state === 'refused') throw first.error
    const events = async function* () {
      try {
        const out = await call.answer
        for await (const item of call.replay(out).items())
          for (const event of streamEvents(JSON.parse(item), req.model)) yield namedEvent(event.type, event)
      } catch (err) {
        yield namedEvent('error', anthropicErrorBody(err).body)
      }
    }
    return {
      status: 200,
      headers: { ...SSE_HEADERS, ...headers },
      body: withKeepAlive(events(), this._keepAliveMs, ANTHROPIC_PING),
    }
  }

  close() {
    this._calls.close()
    this._batches.close()
    this._msgBatches.close()
  }
}

module.exports = { WiresHandler, modelMapOf }
