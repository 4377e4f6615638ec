'use strict'
// Commands: our own, how a real one from @aws-sdk/client-bedrock-runtime is recognised (by its
// schema or class name, read through `command.input`; never by `instanceof`), and how a
// command's input becomes a request through the door (the client and the plugin send this way).

const native = require('../binding.js')
const { bodyBytes } = require('./body.js')
const { converseBody } = require('./converse.js')
const { exception } = require('./errors.js')
const { SDK } = require('./settle.js')

/** Our InvokeModelCommand; a real one from @aws-sdk/client-bedrock-runtime works as well. */
class InvokeModelCommand {
  constructor(input) {
    this.input = input ?? {}
  }
}

/** Our ConverseCommand; a real one from @aws-sdk/client-bedrock-runtime works as well. */
class ConverseCommand {
  constructor(input) {
    this.input = input ?? {}
  }
}

/** Our InvokeModelWithResponseStreamCommand; a real one from @aws-sdk/client-bedrock-runtime works as well. */
class InvokeModelWithResponseStreamCommand {
  constructor(input) {
    this.input = input ?? {}
  }
}

/** Our ConverseStreamCommand; a real one from @aws-sdk/client-bedrock-runtime works as well. */
class ConverseStreamCommand {
  constructor(input) {
    this.input = input ?? {}
  }
}

/** The operation a command runs (`InvokeModel`, `Converse`, ...), or undefined. */
function operationOf(command) {
  if (command instanceof InvokeModelCommand) return 'InvokeModel'
  if (command instanceof ConverseCommand) return 'Converse'
  if (command instanceof InvokeModelWithResponseStreamCommand) return 'InvokeModelWithResponseStream'
  if (command instanceof ConverseStreamCommand) return 'ConverseStream'
  if (Array.isArray(command?.schema) && typeof command.schema[2] === 'string') return command.schema[2]
  const name = command?.constructor?.name
  return typeof name === 'string' && name.endsWith('Command') ? name.slice(0, -'Command'.length) : undefined
}

/** Adds one InvokeModel option that is set to `out` (created on the first). */
function withOption(out, key, value) {
  if (value === undefined || value === null) return out
  const o = out || {}
  o[key] = value
  return o
}

/**
 * The InvokeModel options of an input (and an idempotency key), or undefined when none is set (the
 * common case). A `contentType` of `application/json` is the same as none (the only type
 * InvokeModel takes), so the usual request carries nothing here. Each member is read by name
 * (the send path runs this per request).
 */
function requestOptions(input, idempotencyKey) {
  const contentType = input.contentType
  let out = contentType === 'application/json' ? undefined : withOption(undefined, 'contentType', contentType)
  out = withOption(out, 'accept', input.accept)
  out = withOption(out, 'trace', input.trace)
  out = withOption(out, 'guardrailIdentifier', input.guardrailIdentifier)
  out = withOption(out, 'guardrailVersion', input.guardrailVersion)
  out = withOption(out, 'performanceConfigLatency', input.performanceConfigLatency)
  out = withOption(out, 'serviceTier', input.serviceTier)
  out = withOption(out, 'requestMetadata', input.requestMetadata)
  return withOption(out, 'idempotencyKey', idempotencyKey)
}

/** The code of each operation in a submitted chunk: the binding's NativeOperation enum (no prototype). */
const OPERATION_CODES = Object.freeze(Object.assign(Object.create(null), native.NativeOperation))

/** The code of an operation in a submitted chunk, or undefined for one the engine does not run. */
function operationCode(operation) {
  return OPERATION_CODES[operation]
}

/**
 * Sends a command through a door (`send(command, { abortSignal, idempotencyKey })`, as the
 * client's `send`); resolves to the SDK's output of its operation.
 */
function sendCommand(door, command, options) {
  const op = operationOf(command)
  if (operationCode(op) === undefined) {
    return Promise.reject(
      new TypeError(
        `bedrock-batch-bridge handles InvokeModelCommand, InvokeModelWithResponseStreamCommand, ConverseCommand and ConverseStreamCommand; got ${command?.constructor?.name || typeof command}`,
      ),
    )
  }
  return sendInput(door, op, command.input || {}, options)
}

/**
 * Sends the input of an operation's command through a door, as the SDK would send it: the body
 * of InvokeModel and its streaming twin as given, a Converse input as the JSON the SDK writes;
 * the InvokeModel options from the input, the idempotency key from the send options.
 */
function sendInput(door, op, input, options) {
  const signal = options.abortSignal
  const refused = door.refusal(signal)
  if (refused) return Promise.reject(refused)
  const invoke = op === 'InvokeModel' || op === 'InvokeModelWithResponseStream'
  const body = invoke ? bodyBytes(input.body) : converseBody(input)
  if (body === null)
    return Promise.reject(
      exception('ValidationException', 'body must be a string, Buffer, Uint8Array, ArrayBuffer or typed array.'),
    )
  const key = options.idempotencyKey
  if (key !== undefined && typeof key !== 'string')
    return Promise.reject(exception('ValidationException', 'idempotencyKey must be a string.'))
  const modelId = typeof input.modelId === 'string' ? input.modelId : ''
  let requestOpts = invoke ? requestOptions(input, key) : key === undefined ? undefined : { idempotencyKey: key }
  if (options.deadline !== undefined) {
    const deadline = deadlineMs(options.deadline)
    if (deadline === null)
      return Promise.reject(
        exception('ValidationException', 'deadline must be a Date or a number of milliseconds since the epoch.'),
      )
    requestOpts = { ...requestOpts, deadline }
  }
  return door.submit(SDK, op, modelId, body, requestOpts, signal)
}

/**
 * A deadline as epoch milliseconds: a Date, a number of epoch milliseconds, or an ISO 8601 time
 * (as `serve`'s header may carry it); null when it is none of them.
 */
function deadlineMs(value) {
  const ms =
    value instanceof Date
      ? value.getTime()
      : typeof value === 'number'
        ? value
        : typeof value === 'string' && value.trim() !== ''
          ? Number.isFinite(Number(value))
            ? Number(value)
            : Date.parse(value)
          : Number.NaN
  return Number.isFinite(ms) && ms >= 0 ? ms : null
}

module.exports = {
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ConverseCommand,
  ConverseStreamCommand,
  operationOf,
  operationCode,
  deadlineMs,
  requestOptions,
  sendCommand,
  sendInput,
}
