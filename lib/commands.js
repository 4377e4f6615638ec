'use strict'
// Commands: our own, and how a real one from @aws-sdk/client-bedrock-runtime is recognised
// (by its schema or class name, read through `command.input`; never by `instanceof`).

const native = require('../binding.js')

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

const OPTION_KEYS = [
  'contentType',
  'accept',
  'trace',
  'guardrailIdentifier',
  'guardrailVersion',
  'performanceConfigLatency',
  'serviceTier',
  'requestMetadata',
]

/**
 * The InvokeModel options of an input (and an idempotency key), or undefined when none is set (the
 * common case). A `contentType` of `application/json` is the same as none (the only type
 * InvokeModel takes), so the usual request carries nothing here.
 */
function requestOptions(input, idempotencyKey) {
  let out
  for (const k of OPTION_KEYS) {
    const v = input[k]
    if (v !== undefined && v !== null && !(k === 'contentType' && v === 'application/json')) {
      if (!out) out = {}
      out[k] = v
    }
  }
  if (idempotencyKey !== undefined) {
    if (!out) out = {}
    out.idempotencyKey = idempotencyKey
  }
  return out
}

/** The code of each operation in a submitted chunk: the binding's NativeOperation enum (no prototype). */
const OPERATION_CODES = Object.freeze(Object.assign(Object.create(null), native.NativeOperation))

module.exports = {
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ConverseCommand,
  ConverseStreamCommand,
  OPERATION_CODES,
  operationOf,
  requestOptions,
}
