'use strict'
// The Bedrock runtime wire, for callers that never touch an SDK client class: one handler, shared
// by `batchFetch` and `serve`. It reads `POST /model/{modelId}/invoke`, `/converse`,
// `/invoke-with-response-stream` and `/converse-stream` as the runtime does (URL-encoded model id
// or ARN, the operations' headers from bedrock-runtime's service model), sends the call through a
// door (door.js), and answers as the runtime answers: status, content type, `x-amzn-RequestId`,
// the token-count headers on `invoke`, AWS's event-stream framing for the streams, and AWS's error
// responses (`x-amzn-ErrorType`, JSON `message`) for every error, this package's included.

const { createHash, randomUUID } = require('node:crypto')
const native = require('../binding.js')
const { CallTable } = require('./calls.js')
const { deadlineMs } = require('./commands.js')
const { abortError, exception, exceptionNames } = require('./errors.js')
const { WIRE } = require('./settle.js')

const OPERATIONS = {
  invoke: 'InvokeModel',
  converse: 'Converse',
  'invoke-with-response-stream': 'InvokeModelWithResponseStream',
  'converse-stream': 'ConverseStream',
}
const PATH = /^\/model\/([^/]+)\/(invoke|converse|invoke-with-response-stream|converse-stream)\/?$/
const STATUS = new Map(exceptionNames.map((n) => [n.name, n]))
const EVENT_STREAM = 'application/vnd.amazon.eventstream'

/** The operation and model of a runtime request, or null when the request is not one. */
function route(method, pathname) {
  if (method !== 'POST') return null
  const m = PATH.exec(pathname)
  if (!m) return null
  try {
    return { operation: OPERATIONS[m[2]], modelId: decodeURIComponent(m[1]) }
  } catch {
    return null
  }
}

/**
 * The InvokeModel options the headers carry (bedrock-runtime's service model: `Accept` for invoke,
 * `X-Amzn-Bedrock-Accept` for its streaming twin). An `Accept` of any type is no choice.
 */
function invokeOptions(operation, header) {
  const out = {}
  const set = (key, value) => {
    if (value !== undefined && value !== null && value !== '') out[key] = value
  }
  // The JavaScript SDK sends a body without a content type as application/octet-stream, which
  // the runtime takes as JSON.
  const contentType = header('content-type')
  if (contentType && !/^application\/(json|octet-stream)\s*(;.*)?$/i.test(contentType)) set('contentType', contentType)
  const accept = header(operation === 'InvokeModel' ? 'accept' : 'x-amzn-bedrock-accept')
  if (accept && accept !== '*/*' && !/^application\/json\s*(;.*)?$/i.test(accept)) set('accept', accept)
  set('trace', header('x-amzn-bedrock-trace'))
  set('guardrailIdentifier', header('x-amzn-bedrock-guardrailidentifier'))
  set('guardrailVersion', header('x-amzn-bedrock-guardrailversion'))
  set('performanceConfigLatency', header('x-amzn-bedrock-performanceconfig-latency'))
  set('serviceTier', header('x-amzn-bedrock-service-tier'))
  set('requestMetadata', header('x-amzn-bedrock-request-metadata'))
  return out
}

/** Input and output tokens of a native answer, where its body reports them; else null. */
function tokenCounts(body) {
  let answer
  try {
    answer = JSON.parse(body.toString('utf8'))
  } catch {
    return null
  }
  if (!answer || typeof answer !== 'object') return null
  const u = answer.usage
  const pick = (...values) => values.find((v) => Number.isInteger(v))
  if (u && typeof u === 'object') {
    const input = pick(u.input_tokens, u.inputTokens, u.prompt_tokens)
    const output = pick(u.output_tokens, u.outputTokens, u.completion_tokens)
    return input === undefined || output === undefined ? null : [input, output]
  }
  if (Number.isInteger(answer.prompt_token_count))
    return [answer.prompt_token_count, pick(answer.generation_token_count) ?? 0]
  if (Number.isInteger(answer.inputTextTokenCount) && Array.isArray(answer.results)) {
    return [
      answer.inputTextTokenCount,
      answer.results.reduce((n, r) => n + (Number.isInteger(r?.tokenCount) ? r.tokenCount : 0), 0),
    ]
  }
  return null
}

/** AWS's error response: status, `x-amzn-ErrorType`, `x-amzn-RequestId` and a JSON `message`. */
function refusal(status, name, message, requestId = randomUUID()) {
  return {
    status,
    headers: {
      'content-type': 'application/json',
      'x-amzn-requestid': requestId,
      'x-amzn-errortype': `${name}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
    },
    body: Buffer.from(JSON.stringify({ message })),
  }
}

/** The error response of a call's exception (this package's keep their names), or of any error. */
function errorResponse(err, requestId) {
  const named = err && typeof err.name === 'string' && STATUS.has(err.name)
  if (!named)
    return refusal(
      500,
      'InternalServerException',
      `The request could not be handled: ${err?.message ?? err}`,
      requestId,
    )
  const info = STATUS.get(err.name)
  const status = err.$metadata?.httpStatusCode || info.httpStatusCode || (info.fault === 'server' ? 500 : 400)
  return refusal(status, err.name, String(err.message ?? ''), err.$metadata?.requestId || requestId)
}

/**
 * The frames of a streaming answer as one attempt reads it (from the stream's first event): an
 * error of the stream ends them with an exception frame.
 */
async function* frames(replay) {
  try {
    for await (const item of replay.items()) yield native.encodeEventFrames(Buffer.from(item))
  } catch (err) {
    yield native.encodeExceptionFrame(err.name || 'InternalServerException', String(err.message ?? ''))
  }
}

/**
 * The Bedrock runtime wire over a door: `handler.handle(request)` answers one HTTP request.
 * Calls that carry `amz-sdk-invocation-id` (every AWS SDK sends one and keeps it across the
 * attempts of a call) are joined by their retries: a retry waits for the same answer instead of
 * making a second record, and the id is the request's idempotency key in the journal.
 */
class WireHandler {
  /** `door`: the door (door.js) the calls go through. */
  constructor(door) {
    this._door = door
    // A settled answer stays joinable for the retry window (calls.js); a failure is forgotten at
    // once, so that a retry after a throttling or an outage is sent again (the journal keeps no
    // such failure either).
    this._calls = new CallTable(() => false)
  }

  /** Whether a request is the runtime's: `POST` to one of the four operations' paths. */
  handles(method, pathname) {
    return route(method, pathname) !== null
  }

  /**
   * Answers `{ method, pathname, header(name) → string | undefined, body: Buffer, signal? }` with
   * `{ status, headers, body: Buffer | AsyncIterable<Buffer> }`, or null when the request is not
   * a Bedrock runtime call. `signal` (batchFetch) cancels the call when it aborts and no retry
   * shares it; it then rejects with AbortError.
   */
  async handle(request) {
    const r = route(request.method, request.pathname)
    if (!r) return null
    const requestId = randomUUID()
    const { operation, modelId } = r
    const invocationId = request.header('amz-sdk-invocation-id')
    if (request.signal?.aborted) throw abortError(request.signal)
    let call
    try {
      call = this._call(operation, modelId, request, invocationId)
      const out = await this._await(call, request.signal)
      return this._respond(operation, out, requestId, call)
    } catch (err) {
      if (err?.name === 'AbortError' && request.signal?.aborted) throw err
      return errorResponse(err, requestId)
    }
  }

  /** The call a request makes, or the one its earlier attempt made. */
  _call(operation, modelId, request, invocationId) {
    // The same call: the same operation, model, invocation id and body (an id reused for another
    // body is another call).
    const key = invocationId
      ? `${operation} ${modelId} ${invocationId} ${createHash('sha256').update(request.body).digest('base64')}`
      : null
    const requestOpts =
      operation === 'InvokeModel' || operation === 'InvokeModelWithResponseStream'
        ? invokeOptions(operation, request.header)
        : {}
    if (invocationId) requestOpts.idempotencyKey = `amz-sdk-invocation-id:${invocationId}`
    const deadline = request.header('x-bedrock-batch-deadline')
    if (deadline !== undefined) {
      requestOpts.deadline = deadlineMs(deadline)
      if (requestOpts.deadline === null)
        throw exception(
          'ValidationException',
          'X-Bedrock-Batch-Deadline must be a number of milliseconds since the epoch or an ISO 8601 time.',
        )
    }
    const options = Object.keys(requestOpts).length ? requestOpts : undefined
    // A call started with a signal (batchFetch) is cancelled when every attempt waiting for it has
    // aborted; one started without (serve) stays, for the retry that will join it.
    const controller = request.signal ? new AbortController() : null
    const { call, joined } = this._calls.get(key, () =>
      this._door.submit(WIRE, operation, modelId, request.body, options, controller?.signal),
    )
    if (!joined) {
      call.controller = controller
      call.waiting = 0
      call.settled = false
      const settled = () => {
        call.settled = true
      }
      call.answer.then(settled, settled)
    }
    return call
  }

  /** The answer of a call for one attempt: an aborted `signal` rejects this attempt with AbortError. */
  _await(call, signal) {
    if (!signal) return call.answer
    if (signal.aborted) return Promise.reject(abortError(signal))
    call.waiting++
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        call.waiting--
        reject(abortError(signal))
        if (call.waiting === 0 && call.controller && !call.settled) {
          call.controller.abort(signal.reason)
          this._calls.forget(call)
        }
      }
      signal.addEventListener('abort', onAbort, { once: true })
      call.answer.then(
        (out) => {
          signal.removeEventListener('abort', onAbort)
          resolve(out)
        },
        (err) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }

  _respond(operation, out, requestId, call) {
    const headers = { 'x-amzn-requestid': out.requestId || requestId }
    if (out.performanceConfigLatency != null)
      headers['x-amzn-bedrock-performanceconfig-latency'] = out.performanceConfigLatency
    if (out.serviceTier != null) headers['x-amzn-bedrock-service-tier'] = out.serviceTier
    if (operation === 'InvokeModel') {
      headers['content-type'] = out.contentType || 'application/json'
      const tokens = tokenCounts(out.body)
      if (tokens) {
        headers['x-amzn-bedrock-input-token-count'] = String(tokens[0])
        headers['x-amzn-bedrock-output-token-count'] = String(tokens[1])
      }
      headers['x-amzn-bedrock-invocation-latency'] = String(Date.now() - call.started)
      return { status: 200, headers, body: out.body }
    }
    if (operation === 'Converse') {
      headers['content-type'] = 'application/json'
      return { status: 200, headers, body: out.body }
    }
    headers['content-type'] = EVENT_STREAM
    if (operation === 'InvokeModelWithResponseStream')
      headers['x-amzn-bedrock-content-type'] = out.contentType || 'application/json'
    return { status: 200, headers, body: frames(call.replay(out)) }
  }

  /** Forgets the calls kept for retries (the door is closed separately). */
  close() {
    this._calls.close()
  }
}

module.exports = { WireHandler, route, errorResponse, refusal, tokenCounts, EVENT_STREAM }
