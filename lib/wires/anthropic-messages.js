'use strict'
// Anthropic Messages onto Bedrock's InvokeModel: a `POST /v1/messages` body is Claude's native
// Messages body, so it goes as an InvokeModel record nearly as it is (without `model` and
// `stream`, with Bedrock's `anthropic_version`, and `anthropic-beta` as `anthropic_beta`), and
// Claude's answer is already Anthropic's Message. Pure functions: no I/O.

const { invalid } = require('./errors.js')

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** What Bedrock's Claude calls the API version it speaks. */
const BEDROCK_ANTHROPIC_VERSION = 'bedrock-2023-05-31'

/** Members of Anthropic's API that Bedrock's InvokeModel body does not take: left out. */
const LEFT_OUT = ['model', 'stream', 'metadata', 'service_tier']

/**
 * A Messages request as `{ model, stream, record }`: `record` the InvokeModel body (bytes).
 * `beta`: the `anthropic-beta` header (comma-separated), if any. A WireError (400) names the
 * member at fault.
 */
function messagesRequest(body, beta) {
  if (!isObject(body)) throw invalid(null, 'The request body must be a JSON object.')
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model', 'model: Field required')
  if (!Array.isArray(body.messages)) throw invalid('messages', 'messages: Field required')
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1)
    throw invalid('max_tokens', 'max_tokens: Field required (a whole number of at least 1)')
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean')
    throw invalid('stream', 'stream: Input should be a valid boolean')
  const record = { anthropic_version: BEDROCK_ANTHROPIC_VERSION }
  for (const [k, v] of Object.entries(body)) if (!LEFT_OUT.includes(k) && k !== 'anthropic_version') record[k] = v
  const betas = (beta ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (betas.length) record.anthropic_beta = betas
  return { model: body.model, stream: body.stream === true, record: Buffer.from(JSON.stringify(record)) }
}

/** Claude's answer (bytes) as Anthropic's Message, with `model` as the caller asked. */
function messageAnswer(bytes, model) {
  const answer = JSON.parse(bytes.toString('utf8'))
  if (isObject(answer)) answer.model = model
  return answer
}

/**
 * The Anthropic stream events of one array of InvokeModelWithResponseStream wire events
 * (`{ chunk: { bytes: base64 } }`), `message_start`'s model as the caller asked.
 */
function streamEvents(wireEvents, model) {
  const out = []
  for (const e of wireEvents) {
    if (!e?.chunk) continue
    const event = JSON.parse(Buffer.from(e.chunk.bytes ?? '', 'base64').toString('utf8'))
    if (event?.type === 'message_start' && isObject(event.message)) event.message.model = model
    // Bedrock adds its own metrics to the last event, which Anthropic's API does not send.
    if (isObject(event)) delete event['amazon-bedrock-invocationMetrics']
    out.push(event)
  }
  return out
}

module.exports = { messagesRequest, messageAnswer, streamEvents, BEDROCK_ANTHROPIC_VERSION }
