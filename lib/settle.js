'use strict'
// Settled requests as their callers get them. The engine hands them over packed (NativeSettleChunk
// in binding.d.ts, written by src/settle.rs): request ids, the bodies back to back in one buffer,
// and apart the few failures and the few answers whose metadata differs from a batch record's.
// This module reads a chunk back into each request's exception or answer: `$metadata`, the AWS
// SDK's output shapes, the runtime wire's, and the events of the streams that stay open.

const native = require('../binding.js')
const { Uint8ArrayBlobAdapter } = require('./body.js')
const { converseOutput } = require('./converse.js')
const { exception, toException } = require('./errors.js')
const { EventStream, eventShape } = require('./stream.js')

/** An answer shaped as the AWS SDK's commands return it. */
const SDK = 'sdk'
/** An answer shaped as the Bedrock runtime wire carries it (batchFetch, serve). */
const WIRE = 'wire'

// How the engine writes a batch answer's request id (`<jobArn>#<recordId>`; src/settle.rs).
const FORMAT = native.requestIdFormat()
const JOIN = FORMAT.separator + FORMAT.recordPrefix

/** The request id of the batch record of request `id` in job `jobArn`, as the engine writes it. */
function requestId(jobArn, id) {
  return jobArn + JOIN + String(id).padStart(FORMAT.recordDigits, '0')
}

/** What the request ids of a job's records start with (`requestId(jobArn, id)` is this and the record's digits). */
function requestIdPrefix(jobArn) {
  return jobArn + JOIN
}

/** A chunk's failures and its answers' differing metadata, by index in the chunk (null when none). */
function chunkIndex(chunk) {
  return {
    errors: chunk.errors.length ? new Map(chunk.errors.map((e) => [e.index, e.error])) : null,
    extras: chunk.extras.length ? new Map(chunk.extras.map((e) => [e.index, e])) : null,
  }
}

/**
 * The SDK's `$metadata` of the answer to request `id` (`extra`: its differing metadata, if any;
 * `prefix`: the request id prefix of the chunk's job, see requestIdPrefix).
 */
function responseMetadata(id, extra, chunkArn, prefix) {
  let requestIdOf
  if (extra) requestIdOf = extra.requestId ?? (extra.jobArn ? requestId(extra.jobArn, id) : undefined)
  else if (prefix) requestIdOf = prefix + String(id).padStart(FORMAT.recordDigits, '0')
  else requestIdOf = chunkArn ? requestId(chunkArn, id) : undefined
  return {
    httpStatusCode: 200,
    requestId: requestIdOf,
    extendedRequestId: undefined,
    cfId: undefined,
    attempts: extra?.attempts || 1,
    totalRetryDelay: 0,
  }
}

/** Adds the tier keys the service echoed (`performanceConfigLatency`, `serviceTier`), only those, as the SDK does. */
function withTiers(out, extra) {
  if (extra && extra.performanceConfigLatency != null) out.performanceConfigLatency = extra.performanceConfigLatency
  if (extra && extra.serviceTier != null) out.serviceTier = extra.serviceTier
  return out
}

function contentType(extra) {
  return extra ? extra.contentType : 'application/json'
}

/** InvokeModel's output: the body `data[start..end]` and its metadata. */
function invokeOutput(data, start, end, extra, $metadata) {
  // Each body owns its bytes, as the SDK's do (`body.buffer` holds this answer only, and a kept
  // body does not keep the whole chunk alive).
  const body = new Uint8ArrayBlobAdapter(end - start)
  body.set(data.subarray(start, end))
  // Key for key as the SDK: the tier keys exist only when the service echoed them.
  const out = { body, contentType: contentType(extra) }
  withTiers(out, extra)
  out.$metadata = $metadata
  return out
}

/**
 * The SDK output of another operation's answer (`text`: its JSON). `openStream(shape, text,
 * extra)` gives the EventStream of a streaming answer. Throws ModelErrorException when the
 * answer cannot be read as the operation's.
 */
function sdkOutput(operation, text, extra, $metadata, openStream) {
  try {
    if (operation === 'Converse') return converseOutput(JSON.parse(text), $metadata)
    const stream = openStream(eventShape(operation), text, extra)
    if (operation === 'ConverseStream') return { stream, $metadata }
    const out = { body: stream, contentType: contentType(extra) }
    withTiers(out, extra)
    out.$metadata = $metadata
    return out
  } catch (err) {
    throw exception('ModelErrorException', `The answer could not be read as a ${operation} response: ${err.message}`)
  }
}

/**
 * An answer as the wire carries it: `{ body, contentType, performanceConfigLatency?,
 * serviceTier?, requestId }`, with `stream` (an EventStream of JSON texts of wire-event arrays)
 * instead of `body` for the streaming operations.
 */
function wireOutput(operation, bytes, extra, $metadata, openStream) {
  const out = { contentType: contentType(extra), requestId: $metadata.requestId }
  withTiers(out, extra)
  if (operation === 'InvokeModel' || operation === 'Converse') {
    out.body = Buffer.from(bytes)
    return out
  }
  out.stream = openStream(null, bytes.toString('utf8'), extra)
  return out
}

/**
 * The stream of a streaming answer with its first events (`shape`: the SDK's event shape, or null
 * to keep the wire's JSON texts); ended at once unless more of it follows (an open, on-demand
 * stream: `extra.open`).
 */
function firstEvents(shape, text, extra) {
  const stream = new EventStream(shape)
  stream.push(text)
  if (!extra?.open) stream.end()
  return stream
}

/**
 * Hands one stream part (more events of an open stream, or its end) to its stream: returns
 * whether the stream ended, and with what (`{ ended: true, error }`; `error` null for a clean end).
 */
function applyPart(stream, part) {
  try {
    if (part.events.length > 2) stream.push(part.events.toString('utf8'))
  } catch (err) {
    return {
      ended: true,
      error: exception('ModelStreamErrorException', `A stream event could not be read: ${err.message}`),
    }
  }
  if (!part.end) return { ended: false, error: null }
  return { ended: true, error: part.error ? toException(part.error) : null }
}

module.exports = {
  SDK,
  WIRE,
  requestId,
  chunkIndex,
  requestIdPrefix,
  responseMetadata,
  invokeOutput,
  sdkOutput,
  wireOutput,
  firstEvents,
  applyPart,
}
