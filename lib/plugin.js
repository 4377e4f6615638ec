'use strict'
// batchPlugin: the same engine as middleware for an existing BedrockRuntimeClient, so a code
// base need not change a single call.

const { sendInput } = require('./commands.js')
const { Door } = require('./door.js')

// The key of the SDK's own part of a handler context (`SMITHY_CONTEXT_KEY` of @smithy/types).
const SMITHY_CONTEXT_KEY = '__smithy_context'
// Marks a host client whose `send` already hands its calls' signals to the middleware.
const PASSES_SIGNALS = Symbol.for('bedrock-batch-bridge.passesSignals')

/**
 * The abort signals of calls in progress through a wrapped host `send`, by command object: a
 * queue, in the order of the sends, since one command object may be sent several times at once.
 * The middleware takes the first entry of its command; the wrapper drops an entry nobody took
 * once its call settles (a command the plugin does not route, or a call that failed before it).
 * Shared by every plugin, so two plugins on one host wrap its `send` once.
 */
const callSignals = new WeakMap()

function dropEntry(command, entry) {
  const queue = callSignals.get(command)
  if (!queue) return
  const i = queue.indexOf(entry)
  if (i !== -1) queue.splice(i, 1)
  if (queue.length === 0) callSignals.delete(command)
}

function takeEntry(command) {
  const queue = callSignals.get(command)
  if (!queue) return undefined
  const entry = queue.shift()
  if (queue.length === 0) callSignals.delete(command)
  return entry
}

/**
 * SDKs before @smithy/core 3.39 keep `send(command, { abortSignal })`'s signal from the middleware
 * (it reaches only the HTTP handler, which a batched call never gets to). Wrapping the host's
 * `send` records each call's signal under its command object, which the middleware sees as its
 * context's `commandInstance` (and as `args`). Every form of `send` is kept: a Promise, or
 * `send(command, cb)` / `send(command, options, cb)` with the callback called as before.
 */
function passSignals(host) {
  if (!host || typeof host.send !== 'function' || host[PASSES_SIGNALS]) return
  const send = host.send
  const wrapped = function sendPassingSignal(command, ...rest) {
    if (command === null || (typeof command !== 'object' && typeof command !== 'function'))
      return send.call(this, command, ...rest)
    const [optionsOrCb, cb] = rest
    const options = typeof optionsOrCb === 'function' ? undefined : optionsOrCb
    // Every call gets an entry, with or without a signal, so concurrent sends of one command
    // object keep their order.
    const entry = { signal: options?.abortSignal }
    const queue = callSignals.get(command)
    if (queue) queue.push(entry)
    else callSignals.set(command, [entry])
    const done = () => dropEntry(command, entry)
    // The arguments go on as given; only a callback is wrapped, to drop the entry first.
    const at = typeof optionsOrCb === 'function' ? 0 : typeof cb === 'function' ? 1 : -1
    try {
      if (at !== -1) {
        const callback = rest[at]
        rest[at] = (err, data) => {
          done()
          return callback(err, data)
        }
        return send.call(this, command, ...rest)
      }
      const result = send.call(this, command, ...rest)
      if (result && typeof result.then === 'function') result.then(done, done)
      else done()
      return result
    } catch (err) {
      done()
      throw err
    }
  }
  Object.defineProperty(host, 'send', { value: wrapped, writable: true, configurable: true, enumerable: false })
  Object.defineProperty(host, PASSES_SIGNALS, { value: true })
}

/**
 * The engine listens with `addEventListener`; a signal of the SDK's older interface
 * (`aborted` and `onabort` only, as @smithy/abort-controller's) is followed by a standard one.
 */
function standardSignal(signal) {
  if (!signal || typeof signal.addEventListener === 'function') return signal
  const controller = new AbortController()
  if (signal.aborted) {
    controller.abort(signal.reason)
    return controller.signal
  }
  const previous = signal.onabort
  signal.onabort = function onabort(...a) {
    controller.abort(signal.reason)
    if (typeof previous === 'function') return previous.apply(this, a)
  }
  return controller.signal
}

/** The commands the plugin routes, with their operations (the others pass to the host's handlers untouched). */
const ROUTED = new Map(
  ['InvokeModel', 'InvokeModelWithResponseStream', 'Converse', 'ConverseStream'].map((op) => [`${op}Command`, op]),
)

/**
 * The options a host client fills in where the plugin's options lack them: its region (its
 * provider resolved once) and its credentials provider (the engine calls it again before the
 * credentials expire). Undefined without a host config.
 */
async function hostOptions(host, options) {
  if (!host?.config) return undefined
  const cfg = host.config
  const patch = {}
  if (!options.region && typeof cfg.region === 'function') patch.region = await cfg.region()
  if (!options.credentials && typeof cfg.credentials === 'function') patch.credentials = () => cfg.credentials()
  return patch
}

/**
 * Routes `InvokeModelCommand` of an existing `BedrockRuntimeClient` through the batch engine and
 * lets every other command through untouched:
 * `runtime.middlewareStack.use(batchPlugin({ client: runtime, batch: {...} }))`.
 * Region and credentials come from the host client (`options.client`) when the options lack them.
 * The returned object is also the handle for `flush()`, `close()`, `stats()` and `on()`.
 *
 * `send(command, { abortSignal })` is honoured: SDKs on @smithy/core 3.39 or later hand the signal
 * to the middleware themselves; for older ones the plugin wraps the host client's `send` (given as
 * `options.client`) to pass it on, so without a host client only the newer SDKs abort.
 */
function batchPlugin(options = {}) {
  const { client: host, ...rest } = options
  // Started at the first request, once the host's region and credentials are known.
  const door = new Door(rest)
  passSignals(host)
  let ready = null
  // The host's config holds async providers; resolve them once, before the first request.
  const prepare = () => {
    if (!ready) {
      ready = hostOptions(host, rest).then((patch) => {
        if (patch) door.configure({ ...door.options, ...patch })
      })
    }
    return ready
  }
  const middleware = (next, context) => async (args) => {
    const operation = ROUTED.get(context.commandName)
    if (!operation) return next(args)
    // Taken at once, before any await, so concurrent sends of one command keep their order.
    const smithy = context[SMITHY_CONTEXT_KEY]
    const instance = smithy?.commandInstance ?? args
    const entry = takeEntry(instance) ?? (instance === args ? undefined : takeEntry(args))
    const signal = standardSignal(smithy?.abortSignal ?? entry?.signal)
    await prepare()
    const output = await sendInput(door, operation, args.input || {}, { abortSignal: signal })
    return { output, response: undefined }
  }
  return {
    applyToStack(stack) {
      stack.add(middleware, { step: 'initialize', name: 'bedrockBatchBridge', priority: 'high', override: true })
    },
    flush: async () => door.flush(),
    close: () => door.close(),
    destroy: (o) => door.destroy(o),
    stats: () => door.stats(),
    metrics: () => door.metrics(),
    requestsByModel: () => door.requestsByModel(),
    on(event, listener) {
      door.on(event, listener)
      return this
    },
  }
}

module.exports = { batchPlugin }
