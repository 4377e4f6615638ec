'use strict'
// Converse requests and answers as the AWS SDK's restJson1 serializer and deserializer shape them
// (bedrock-runtime 2023-09-30): both walk the shapes generated from botocore's service model
// (lib/converse-shapes.json, written by scripts/gen-botocore.py). A request goes on the wire as JSON
// without `modelId`, members in the SDK's order, blobs (image, document, video and audio bytes,
// redacted reasoning) as base64; an answer's members come back in the model's order, blobs as
// Uint8Array.
// Each shape: ['s', [[member, shape], ...]] a structure (body members in the SDK's order), ['u', ...]
// a union, ['l', shape] a list, ['m', shape] a map's values, ['b'] a blob, ['t'] a timestamp, ['d'] a
// document. Shapes not listed are strings, numbers and booleans.

const { shapes: SHAPES } = require('./converse-shapes.json')

/**
 * A Converse input as the JSON body the SDK would send: members in the SDK's order (required ones
 * first), without `modelId` (it is in the URL), without undefined or null members, without members
 * the model does not define; blobs (a Uint8Array, or a string as its UTF-8 bytes) as base64,
 * timestamps as epoch seconds, documents as they are.
 */
function converseBody(input) {
  return JSON.stringify(wire(input, 'ConverseRequest'))
}

function wire(v, shapeName) {
  const shape = SHAPES[shapeName]
  if (shape === undefined || v === null || v === undefined) return v
  switch (shape[0]) {
    case 's':
    case 'u': {
      if (typeof v !== 'object') return v
      const out = {}
      for (const [member, memberShape] of shape[1]) {
        const x = v[member]
        if (x !== undefined && x !== null) out[member] = wire(x, memberShape)
      }
      return out
    }
    case 'l':
      return Array.isArray(v) ? v.map((x) => wire(x, shape[1])) : v
    case 'm': {
      if (typeof v !== 'object') return v
      const out = {}
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = wire(x, shape[1])
      return out
    }
    case 'b':
      return base64(v)
    case 't':
      return v instanceof Date ? v.getTime() / 1000 : v
    default:
      return v
  }
}

function base64(v) {
  if (typeof v === 'string') return Buffer.from(v, 'utf8').toString('base64')
  if (v instanceof ArrayBuffer) return Buffer.from(v).toString('base64')
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
  return v
}

/** The members of ConverseResponse, in the model's order. */
const RESPONSE_MEMBERS = [
  'output',
  'stopReason',
  'usage',
  'metrics',
  'additionalModelResponseFields',
  'trace',
  'performanceConfig',
  'serviceTier',
]

function bytes(b64) {
  const buf = Buffer.from(b64, 'base64')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/** An answer's value of shape `shapeName` with its blobs as bytes (changed in place). */
function read(v, shapeName) {
  const shape = SHAPES[shapeName]
  if (shape === undefined || v === null || typeof v !== 'object')
    return shape?.[0] === 'b' && typeof v === 'string' ? bytes(v) : v
  switch (shape[0]) {
    case 's':
    case 'u':
      for (const [member, memberShape] of shape[1]) if (v[member] != null) v[member] = read(v[member], memberShape)
      return v
    case 'l':
      return Array.isArray(v) ? v.map((x) => read(x, shape[1])) : v
    case 'm':
      for (const k of Object.keys(v)) v[k] = read(v[k], shape[1])
      return v
    default:
      return v
  }
}

/** A Converse answer (its JSON) in the SDK's ConverseCommandOutput shape. */
function converseOutput(json, $metadata) {
  const out = {}
  for (const k of RESPONSE_MEMBERS) if (json[k] !== undefined && json[k] !== null) out[k] = json[k]
  read(out, 'ConverseResponse')
  out.$metadata = $metadata
  return out
}

/** A ConverseStream event (one member of ConverseStreamOutput) with its blobs as bytes. */
function converseStreamEvent(event) {
  return read(event, 'ConverseStreamOutput')
}

module.exports = { converseBody, converseOutput, converseStreamEvent }
