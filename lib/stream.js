'use strict'
// The answers of the streaming commands as the AWS SDK gives them: ConverseStreamCommand's
// `stream` and InvokeModelWithResponseStreamCommand's `body`, async iterables of events. The
// engine hands events over as on the wire (`{"<eventType>": payload}`, blobs in base64): all at
// once for an answer that came from a batch record, or as they arrive for an on-demand stream.
// Event members are those of bedrock-runtime's ConverseStreamOutput and ResponseStream unions
// (botocore 1.44.8's service model); anything else in a payload is dropped, as the SDK drops it.

const { converseStreamEvent } = require('./converse.js')
const { shapes: SHAPES } = require('./converse-shapes.json')

/** The members of each ConverseStream event, in the SDK's order (from the service model). */
const CONVERSE_EVENT_MEMBERS = Object.fromEntries(
  SHAPES.ConverseStreamOutput[1].map(([event, shape]) => [event, SHAPES[shape][1].map(([m]) => m)]),
)

function bytes(b64) {
  const buf = Buffer.from(b64, 'base64')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

function pick(payload, members) {
  const out = {}
  if (!payload || typeof payload !== 'object') return out
  for (const k of members) if (payload[k] !== undefined && payload[k] !== null) out[k] = payload[k]
  return out
}

/** A ConverseStream wire event as the SDK yields it (blobs as bytes). */
function converseEvent(wire) {
  const [type] = Object.keys(wire)
  const members = CONVERSE_EVENT_MEMBERS[type]
  if (!members) return { $unknown: [type, wire[type]] }
  return converseStreamEvent({ [type]: pick(wire[type], members) })
}

/** An InvokeModelWithResponseStream wire event as the SDK yields it (`chunk.bytes` as bytes). */
function chunkEvent(wire) {
  if (wire.chunk) return { chunk: { bytes: bytes(wire.chunk.bytes ?? '') } }
  const [type] = Object.keys(wire)
  return { $unknown: [type, wire[type]] }
}

/**
 * The events of one streaming answer: pushed by the client as they come, read once by the caller
 * with `for await`. An error ends the iteration by throwing it, as the SDK's stream throws a
 * stream exception.
 */
class EventStream {
  constructor(shape) {
    this._shape = shape
    this._events = []
    this._done = false
    this._error = null
    this._wake = null
    this._taken = false
  }

  /** More wire events (a JSON text of an array of them); a stream without a shape keeps the text. */
  push(json) {
    if (!this._shape) {
      this._events.push(json)
      this._notify()
      return
    }
    const events = JSON.parse(json)
    for (const e of events) this._events.push(this._shape(e))
    this._notify()
  }

  /** The end: cleanly, or with an exception. */
  end(error) {
    if (this._done) return
    this._done = true
    this._error = error ?? null
    this._notify()
  }

  /** The caller gave up: events not read yet are dropped and the reader gets `error` next. */
  abort(error) {
    this._events = []
    this._aborted = true
    this._done = true
    this._error = error
    this._notify()
  }

  _notify() {
    const wake = this._wake
    this._wake = null
    if (wake) wake()
  }

  async *_iterate() {
    let next = 0
    try {
      for (;;) {
        while (next < this._events.length && !this._aborted) {
          const e = this._events[next]
          this._events[next++] = undefined
          yield e
        }
        this._events = []
        next = 0
        if (this._done) {
          if (this._error) throw this._error
          return
        }
        await new Promise((resolve) => {
          this._wake = resolve
        })
      }
    } finally {
      this.onDone?.()
    }
  }

  [Symbol.asyncIterator]() {
    if (this._taken) throw new TypeError('This stream was already read: a stream can be iterated once.')
    this._taken = true
    return this._iterate()
  }
}

/** The events' shape for an operation. */
function eventShape(operation) {
  return operation === 'ConverseStream' ? converseEvent : chunkEvent
}

module.exports = { EventStream, eventShape }
