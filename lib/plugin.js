'use strict'
// batchPlugin: the same engine as middleware for an existing BedrockRuntimeClient, so a code
// base need not change a single call.

const { BatchInferenceClient } = require('./client.js')
const { ConverseCommand, ConverseStreamCommand, InvokeModelCommand, InvokeModelWithResponseStreamCommand } = require('./commands.js')

/**
 * Routes `InvokeModelCommand` of an existing `BedrockRuntimeClient` through the batch engine and
 * lets every other command through untouched:
 * `runtime.middlewareStack.use(batchPlugin({ client: runtime, batch: {...} }))`.
 * Region and credentials come from the host client (`options.client`) when the options lack them.
 * The returned object is also the handle for `flush()`, `close()`, `stats()` and `on()`.
 */
function batchPlugin(options = {}) {
  const { client: host, ...rest } = options
  // Started at the first request, once the host's region and credentials are known.
  const engine = new BatchInferenceClient()
  engine._options = rest
  let ready = null
  // The host's config holds async providers; resolve them once, before the first request.
  const prepare = () => {
    if (!ready) {
      ready = (async () => {
        if (!host?.config) return
        const cfg = host.config
        const patch = {}
        if (!rest.region && typeof cfg.region === 'function') patch.region = await cfg.region()
        // The host's own provider: the engine calls it again before its credentials expire.
        if (!rest.credentials && typeof cfg.credentials === 'function') patch.credentials = () => cfg.credentials()
        engine._options = { ...engine._options, ...patch }
      })()
    }
    return ready
  }
  const commands = { InvokeModelCommand, InvokeModelWithResponseStreamCommand, ConverseCommand, ConverseStreamCommand }
  const middleware = (next, context) => async (args) => {
    const Command = commands[context.commandName]
    if (!Command) return next(args)
    await prepare()
    const output = await engine._send(new Command(args.input), { abortSignal: context.abortSignal || args.abortSignal })
    return { output, response: undefined }
  }
  return {
    applyToStack(stack) {
      stack.add(middleware, { step: 'initialize', name: 'bedrockBatchBridge', priority: 'high', override: true })
    },
    flush: () => engine.flush(),
    close: () => engine.close(),
    destroy: (o) => engine.destroy(o),
    stats: () => engine.stats(),
    on(event, listener) {
      engine.on(event, listener)
      return this
    },
  }
}

module.exports = { batchPlugin }
