'use strict'
// The last failures, for the dashboards: a bounded ring of the requests a door settled with an
// exception (those their caller aborted are not failures), or of the failed records a store keeps,
// each with the exception's name and message. Messages are those AWS or this package worded: they
// name members, never a request's values. Each is kept to one line of at most 300 characters
// (control characters, line separators and bidirectional controls become a space), so that a row of
// the page shows one failure. Never a request body or an answer.

/** Failures kept: each new one past these replaces the oldest. */
const MAX_FAILURES = 50
/** Characters kept of a message (an ellipsis ends a longer one). */
const MAX_MESSAGE = 300
/** Characters kept of an exception's name, a job ARN or a record id. */
const MAX_NAME = 200

/** What cannot be shown on one line: C0 and C1 controls, line and paragraph separators, bidirectional controls. */
const UNPRINTABLE = /[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+/gu

/**
 * `value` as one line of at most `max` characters: each run of what cannot be shown becomes one
 * space; a longer text is cut (never inside a surrogate pair) and ends with `…`.
 */
function oneLine(value, max) {
  // Read no more than a line could show (a message may be long).
  let text = String(value ?? '')
    .slice(0, max * 2)
    .replace(UNPRINTABLE, ' ')
    .trim()
  if (text.length > max) {
    let cut = max - 1
    const code = text.charCodeAt(cut - 1)
    if (code >= 0xd800 && code <= 0xdbff) cut--
    text = `${text.slice(0, cut)}…`
  }
  return text
}

/** A string field of an exception, or undefined when it has none. */
function field(err, name) {
  try {
    const v = err?.[name]
    return typeof v === 'string' && v !== '' ? v : undefined
  } catch {
    // A getter that throws: no such field.
    return undefined
  }
}

/**
 * A ring of the last failures. `add` keeps what it is given as is (a door may reject a million
 * pending requests at once: each costs one small object); `list` makes them into lines.
 */
class RecentFailures {
  constructor(max = MAX_FAILURES) {
    this._max = max
    this._ring = []
    // Where the next one goes once the ring is full.
    this._next = 0
  }

  /**
   * Keeps one failure: `where` (what the source says of its request: the door's request tag, or
   * `{ model, jobArn, recordId }` of a stored record), the exception `err` (`name`, `message`,
   * `jobArn` for a batch record), `at` (epoch ms, or undefined when the source does not know).
   */
  add(where, err, at) {
    const entry = { at, where, name: field(err, 'name'), message: field(err, 'message'), jobArn: field(err, 'jobArn') }
    if (this._ring.length < this._max) this._ring.push(entry)
    else {
      this._ring[this._next] = entry
      this._next = (this._next + 1) % this._max
    }
  }

  /** How many are kept. */
  get size() {
    return this._ring.length
  }

  /**
   * The failures, newest first: `{ at?, model, operation?, error, message, jobArn?, recordId? }`.
   * `labelsOf(where)` gives the model and operation (and a stored record's job and id).
   */
  list(labelsOf = (where) => where) {
    const out = []
    const n = this._ring.length
    for (let k = 1; k <= n; k++) {
      const e = this._ring[(this._next - k + n) % n]
      const labels = labelsOf(e.where)
      const line = {}
      if (Number.isFinite(e.at)) line.at = e.at
      line.model = String(labels.model ?? '')
      if (labels.operation) line.operation = labels.operation
      line.error = oneLine(e.name ?? 'Error', MAX_NAME)
      line.message = oneLine(e.message, MAX_MESSAGE)
      const jobArn = e.jobArn ?? labels.jobArn
      if (jobArn) line.jobArn = oneLine(jobArn, MAX_NAME)
      if (labels.recordId) line.recordId = oneLine(labels.recordId, MAX_NAME)
      out.push(line)
    }
    return out
  }
}

module.exports = { RecentFailures, oneLine, MAX_FAILURES, MAX_MESSAGE }
