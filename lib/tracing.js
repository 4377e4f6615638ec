'use strict'
// OpenTelemetry traces, when `@opentelemetry/api` is installed (an optional peer dependency: it is
// looked up at the first request, and nothing happens without it) and a tracer provider is
// registered: a span per call (`bedrock.batch <operation>`), a child of the caller's active span at
// send, linked to a span per batch job (`bedrock.batch job`, from the job's first status to its
// end). Without a provider, a call costs one comparison. Attributes follow the OpenTelemetry
// semantic conventions for generative AI where they apply; they never hold a request body, an
// answer, an idempotency key (only its hash) or a credential.

const { createHash } = require('node:crypto')
const { version } = require('../package.json')
const { TERMINAL } = require('./job-status.js')

const TRACER = 'bedrock-batch-bridge'
const OUTCOMES = ['success', 'error', 'aborted']

// The API (null when it cannot be loaded) and the provider that stands for "none registered".
let api
let noopProvider

function loadApi() {
  try {
    api = require('@opentelemetry/api')
    noopProvider = new api.ProxyTracerProvider().getDelegate()
  } catch {
    api = null
  }
  return api
}

/** The hash of an idempotency key as spans carry it: the first 16 hex digits of its SHA-256. */
function keyHash(key) {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}

/** `{ input, output }` tokens an answer's JSON reports (Anthropic, Converse/Nova, Llama shapes), or null. */
function usageOf(text) {
  let answer
  try {
    answer = JSON.parse(text)
  } catch {
    return null
  }
  const u = answer?.usage
  if (u && typeof u === 'object') {
    const input = u.input_tokens ?? u.inputTokens
    const output = u.output_tokens ?? u.outputTokens
    if (typeof input === 'number' || typeof output === 'number') return { input, output }
  }
  if (typeof answer?.prompt_token_count === 'number')
    return { input: answer.prompt_token_count, output: answer.generation_token_count }
  return null
}

/** The spans of one door: its calls' (by request id) and its jobs' (by ARN). */
class Tracing {
  constructor() {
    this._tracer = null
    // Created with the first recorded span: `spans !== null` is the settle path's one check.
    this.spans = null
    this._jobs = new Map()
    // ARNs of jobs whose span ended (kept in _jobs for the calls they answered to link to).
    this._ended = new Set()
  }

  /** A tracer when the API is there and a provider is registered, else null. */
  _active() {
    const a = api === undefined ? loadApi() : api
    if (a === null || a.trace.getTracerProvider().getDelegate() === noopProvider) return null
    if (this._tracer === null) this._tracer = a.trace.getTracer(TRACER, version)
    return this._tracer
  }

  /** Starts the span of request `id` (a child of the caller's active span), if traces are on. */
  start(id, operation, modelId, idempotencyKey) {
    const tracer = this._active()
    if (tracer === null) return
    const span = tracer.startSpan(`bedrock.batch ${operation}`, { kind: api.SpanKind.CLIENT }, api.context.active())
    if (!span.isRecording()) return
    span.setAttribute('gen_ai.system', 'aws.bedrock')
    span.setAttribute(
      'gen_ai.operation.name',
      operation === 'Converse' || operation === 'ConverseStream' ? 'chat' : 'invoke_model',
    )
    span.setAttribute('gen_ai.request.model', modelId)
    span.setAttribute('bedrock_batch.operation', operation)
    if (typeof idempotencyKey === 'string') span.setAttribute('bedrock_batch.key_hash', keyHash(idempotencyKey))
    if (this.spans === null) this.spans = new Map()
    this.spans.set(id, span)
  }

  /**
   * Ends the span of request `id`: `outcome` (metrics.js: 0 success, 1 error, 2 aborted), and what
   * the door saw: `{ jobArn?, tier?, onDemand?, errorName?, answer?() }` (`answer` gives the JSON
   * text of a non-streaming answer, read only here, for its token usage).
   */
  end(id, outcome, seen) {
    const span = this.spans?.get(id)
    if (span === undefined) return
    this.spans.delete(id)
    span.setAttribute('bedrock_batch.outcome', OUTCOMES[outcome])
    const route = seen.jobArn ? 'batch' : seen.onDemand ? 'on-demand' : undefined
    if (route) span.setAttribute('bedrock_batch.route', route)
    if (seen.tier) span.setAttribute('bedrock_batch.tier', seen.tier)
    if (seen.jobArn) {
      span.setAttribute('bedrock_batch.job_arn', seen.jobArn)
      const job = this._jobs.get(seen.jobArn)
      if (job && typeof span.addLink === 'function') span.addLink({ context: job.spanContext() })
    }
    if (outcome === 1) {
      span.setAttribute('error.type', seen.errorName || 'Error')
      // The exception's name only: its message may quote the request.
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: seen.errorName || 'Error' })
    }
    const usage = seen.answer ? usageOf(seen.answer()) : null
    if (usage) {
      if (typeof usage.input === 'number') span.setAttribute('gen_ai.usage.input_tokens', usage.input)
      if (typeof usage.output === 'number') span.setAttribute('gen_ai.usage.output_tokens', usage.output)
    }
    span.end()
    if (this.spans.size === 0) this.spans = null
  }

  /** A job's status change: starts its span at the first, ends it at a terminal status. */
  job(job) {
    if (this._ended.has(job.jobArn)) return
    let span = this._jobs.get(job.jobArn)
    if (span === undefined) {
      const tracer = this._active()
      if (tracer === null) return
      span = tracer.startSpan('bedrock.batch job', { kind: api.SpanKind.CLIENT, root: true })
      if (!span.isRecording()) return
      span.setAttribute('gen_ai.system', 'aws.bedrock')
      span.setAttribute('gen_ai.request.model', job.modelId)
      span.setAttribute('bedrock_batch.job_arn', job.jobArn)
      span.setAttribute('bedrock_batch.job_name', job.jobName)
      this._jobs.set(job.jobArn, span)
    }
    span.setAttribute('bedrock_batch.job_status', job.status)
    span.addEvent(job.status)
    if (TERMINAL.has(job.status)) this._endJob(job.jobArn, span, job)
  }

  _endJob(jobArn, span, job) {
    if (job) {
      span.setAttribute('bedrock_batch.records.total', job.totalRecordCount)
      span.setAttribute('bedrock_batch.records.success', job.successRecordCount)
      span.setAttribute('bedrock_batch.records.error', job.errorRecordCount)
      if (job.status !== 'Completed') span.setStatus({ code: api.SpanStatusCode.ERROR, message: job.status })
    }
    span.end()
    this._ended.add(jobArn)
  }

  /** Forgets ended jobs once no call is waiting (a call's link needs its job's span until it settles). */
  sweep() {
    if (this.spans !== null || this._ended.size === 0) return
    for (const arn of this._ended) this._jobs.delete(arn)
    this._ended.clear()
  }

  /** Ends the spans of jobs still running (the door was destroyed). */
  close() {
    for (const [arn, span] of this._jobs) if (!this._ended.has(arn)) span.end()
    this._jobs.clear()
    this._ended.clear()
  }
}

module.exports = { Tracing, keyHash, usageOf }
