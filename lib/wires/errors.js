'use strict'
// Errors of the OpenAI and Anthropic wires: a request this layer refuses (WireError: status,
// message, the member at fault), and any call's failure as each wire answers it (status, its
// error body, `x-should-retry`).

const { exceptionNames } = require('../errors.js')
const { retryable } = require('../calls.js')

const INFO = new Map(exceptionNames.map((n) => [n.name, n]))

/** A request refused by a wire before it reaches the door. */
class WireError extends Error {
  /** `status`; `message`; `param`: the member at fault (OpenAI's `param`); `type`: the wire's error type, if not the status's. */
  constructor(status, message, { param = null, type, code } = {}) {
    super(message)
    this.name = 'WireError'
    this.status = status
    this.param = param
    this.type = type
    this.code = code
  }
}

/** A 400 naming the member at fault. */
function invalid(param, message) {
  return new WireError(400, message, { param })
}

/** The HTTP status of a failure: a WireError's, an exception's (its metadata, else its name's), else 500. */
function statusOf(err) {
  if (err instanceof WireError) return err.status
  const named = err && typeof err.name === 'string' ? INFO.get(err.name) : undefined
  if (!named) return 500
  return err.$metadata?.httpStatusCode || named.httpStatusCode || (named.fault === 'server' ? 500 : 400)
}

/** The message a failure is answered with: an exception's name and message (never a body). */
function messageOf(err) {
  if (err instanceof WireError) return err.message
  if (err && typeof err.name === 'string' && INFO.has(err.name)) return `${err.name}: ${err.message ?? ''}`
  return `The request could not be handled: ${err?.message ?? err}`
}

const OPENAI_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'insufficient_quota',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  409: 'conflict_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
}

function headersFor(status, contentType = 'application/json') {
  const headers = { 'content-type': contentType }
  // The SDKs retry 408, 409, 429 and 5xx by themselves: a failure for good tells them not to.
  headers['x-should-retry'] = retryable(status) ? 'true' : 'false'
  return headers
}

/** OpenAI's error body: `{ error: { message, type, param, code } }`. */
function openaiErrorBody(err) {
  const status = statusOf(err)
  const type = err?.type ?? OPENAI_TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error')
  const code = err instanceof WireError ? (err.code ?? null) : typeof err?.name === 'string' ? err.name : null
  return { status, body: { error: { message: messageOf(err), type, param: err?.param ?? null, code } } }
}

/** An OpenAI error response. */
function openaiError(err) {
  const { status, body } = openaiErrorBody(err)
  return { status, headers: headersFor(status), body: Buffer.from(JSON.stringify(body)) }
}

const ANTHROPIC_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  504: 'timeout_error',
  529: 'overloaded_error',
}

/** Anthropic's status and error body (`{ type: "error", error: { type, message } }`); 529 for an unavailable service. */
function anthropicErrorBody(err) {
  let status = statusOf(err)
  if (err?.name === 'ServiceUnavailableException' || status === 503) status = 529
  const type = err?.type ?? ANTHROPIC_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error')
  return { status, body: { type: 'error', error: { type, message: messageOf(err) } } }
}

/** An Anthropic error response. */
function anthropicError(err) {
  const { status, body } = anthropicErrorBody(err)
  return { status, headers: headersFor(status), body: Buffer.from(JSON.stringify(body)) }
}

module.exports = {
  WireError,
  invalid,
  statusOf,
  messageOf,
  openaiError,
  openaiErrorBody,
  anthropicError,
  anthropicErrorBody,
}
