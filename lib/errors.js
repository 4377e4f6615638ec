'use strict'
// Exceptions: one class per name the engine can report (the list comes from the binding, where
// it exists once), and the one function that turns an engine error (plain data, from a throw, a
// settlement or an async result) into its exception. Bedrock runtime exceptions are the AWS SDK's
// own classes when the application has `@aws-sdk/client-bedrock-runtime`, so `instanceof` works
// with either import.

const native = require('../binding.js')

const CLIENT_FAULT = 'client'

function loadSdk() {
  try {
    return require('@aws-sdk/client-bedrock-runtime')
  } catch {
    return null
  }
}
const sdk = loadSdk()

/**
 * Base of this package's own exceptions: the SDK's fields, as own enumerable keys in the order the
 * SDK's deserialized exceptions have them (`$fault, $retryable, $metadata, name, message`).
 */
class BedrockBatchBridgeException extends Error {
  constructor(opts) {
    super()
    this.$fault = opts.$fault || CLIENT_FAULT
    this.$retryable = undefined
    this.$metadata = opts.$metadata || {}
    this.name = opts.name
    if (opts.message !== undefined) this.message = opts.message
    Object.setPrototypeOf(this, new.target.prototype)
  }
}

/** Every exception name, with its fault and status: `[{ name, fault, httpStatusCode?, sdk }]`. */
const NAMES = native.exceptionNames()
const INFO = new Map(NAMES.map((n) => [n.name, n]))

/** The exported class of each name: the SDK's for Bedrock runtime exceptions when it is installed. */
const exceptionClasses = {}
for (const { name, sdk: fromSdk } of NAMES) {
  const theirs = fromSdk && sdk && typeof sdk[name] === 'function' ? sdk[name] : null
  exceptionClasses[name] =
    theirs ||
    {
      [name]: class extends BedrockBatchBridgeException {
        constructor(opts = {}) {
          super({ ...opts, name })
        }
      },
    }[name]
}

/** Whether a value is an engine error as data. */
function isEngineError(value) {
  return value !== null && typeof value === 'object' && value.bedrockBatchBridgeError === true
}

/** The exception of an engine error (data from the binding). */
function toException(e) {
  const info = INFO.get(e.name)
  const $metadata = {
    httpStatusCode: e.httpStatusCode ?? info?.httpStatusCode ?? undefined,
    // As the caller sees it (the binding's: the call's, else `<jobArn>#<recordId>`, else the job's).
    requestId: e.requestId ?? undefined,
    extendedRequestId: undefined,
    cfId: undefined,
    attempts: e.attempts || 1,
    totalRetryDelay: 0,
  }
  const $fault = e.fault || info?.fault || CLIENT_FAULT
  const Class = exceptionClasses[e.name]
  let err
  if (Class && !(Class.prototype instanceof BedrockBatchBridgeException)) {
    // As the SDK builds a service error: constructed without a message, which is then assigned
    // (an own enumerable key), and `$response` hidden (the SDK hides the HTTP response there).
    err = new Class({ $fault, $metadata })
    Object.defineProperty(err, '$response', { value: undefined, enumerable: false, writable: true, configurable: true })
    err.message = e.message ?? 'UnknownError'
  } else if (Class) {
    err = new Class({ message: e.message, $fault, $metadata })
  } else {
    err = new BedrockBatchBridgeException({ message: e.message, $fault, $metadata, name: e.name || 'UnknownError' })
  }
  if (e.jobArn) err.jobArn = e.jobArn
  if (e.recordId) err.recordId = e.recordId
  if (e.status) err.status = e.status
  if (e.capUsd != null) {
    err.capUsd = e.capUsd
    err.committedUsd = e.committedUsd
    err.estimateUsd = e.estimateUsd
  }
  return err
}

/** An exception of `name` raised by this layer (before anything reaches the engine). */
function exception(name, message) {
  return toException({ name, message })
}

/** What a native call threw, as the exception to give the caller. */
function fromNative(thrown) {
  return isEngineError(thrown) ? toException(thrown) : thrown
}

/** Runs a sync native call, turning an engine error it throws into its exception. */
function call(fn) {
  try {
    return fn()
  } catch (thrown) {
    throw fromNative(thrown)
  }
}

/** The SDK's abort error (`name: "AbortError"`, `"Request aborted"`); the signal's reason is its (hidden) `cause`. */
function abortError(signal) {
  const reason = signal?.reason
  const err = reason === undefined ? new Error('Request aborted') : new Error('Request aborted', { cause: reason })
  err.name = 'AbortError'
  return err
}

/** The result of an async native call (`{ error?, ... }`): its `key`, or its error as an exception. */
function unwrap(result, key) {
  if (result.error) throw toException(result.error)
  return result[key]
}

module.exports = {
  unwrap,
  BedrockBatchBridgeException,
  exceptionClasses,
  exceptionNames: NAMES,
  toException,
  exception,
  isEngineError,
  fromNative,
  call,
  abortError,
}
