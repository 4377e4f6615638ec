'use strict'
// Converse requests and answers as the AWS SDK's restJson1 serializer and deserializer shape them
// (bedrock-runtime 2023-09-30, checked against botocore 1.44.8's service model): a request goes
// on the wire as JSON without `modelId`, without undefined members, blobs (image, document, video
// and audio bytes, redacted reasoning) as base64; an answer's members come back in the model's
// order, blobs as Uint8Array.

/** ConverseRequest's body members, in the model's order (the SDK's serializer writes them so). */
const REQUEST_MEMBERS = [
  'messages',
  'system',
  'inferenceConfig',
  'toolConfig',
  'guardrailConfig',
  'projectIdentifier',
  'additionalModelRequestFields',
  'promptVariables',
  'additionalModelResponseFieldPaths',
  'requestMetadata',
  'performanceConfig',
  'serviceTier',
  'outputConfig',
]

/**
 * A Converse input as the JSON body the SDK would send: its members in the model's order, without
 * `modelId` (it is in the URL) and without members the model does not define.
 */
function converseBody(input) {
  const body = {}
  for (const k of REQUEST_MEMBERS) if (input[k] !== undefined) body[k] = wire(input[k])
  return JSON.stringify(body)
}

function wire(v) {
  if (v === null || typeof v !== 'object') return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
  if (v instanceof ArrayBuffer) return Buffer.from(v).toString('base64')
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
  if (v instanceof Date) return v.getTime() / 1000
  if (Array.isArray(v)) return v.map(wire)
  const out = {}
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue
    out[k] = wire(x)
  }
  return out
}

/** The members of ConverseResponse, in the model's order. */
const RESPONSE_MEMBERS = ['output', 'stopReason', 'usage', 'metrics', 'additionalModelResponseFields', 'trace', 'performanceConfig', 'serviceTier']

function bytes(b64) {
  const buf = Buffer.from(b64, 'base64')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/** A media block (image, document, video, audio) with its `source.bytes` as bytes. */
function media(block) {
  if (block && typeof block.source?.bytes === 'string') block.source.bytes = bytes(block.source.bytes)
}

/** A content block's blobs as bytes (the model's blob members of ContentBlock). */
function contentBlock(c) {
  if (!c || typeof c !== 'object') return c
  for (const k of ['image', 'document', 'video', 'audio']) media(c[k])
  if (c.guardContent) media(c.guardContent.image)
  if (typeof c.reasoningContent?.redactedContent === 'string') c.reasoningContent.redactedContent = bytes(c.reasoningContent.redactedContent)
  if (Array.isArray(c.toolResult?.content)) for (const r of c.toolResult.content) for (const k of ['image', 'document', 'video']) media(r?.[k])
  return c
}

/** A Converse answer (its JSON) in the SDK's ConverseCommandOutput shape. */
function converseOutput(json, $metadata) {
  const out = {}
  for (const k of RESPONSE_MEMBERS) if (json[k] !== undefined && json[k] !== null) out[k] = json[k]
  const content = out.output?.message?.content
  if (Array.isArray(content)) content.forEach(contentBlock)
  out.$metadata = $metadata
  return out
}

module.exports = { converseBody, converseOutput }
