// batchPlugin honours `send(command, { abortSignal })` on a real BedrockRuntimeClient, for the
// SDK installed (3.1164.0: @smithy/core hands the signal to the middleware in its context) and
// for the oldest SDK of the peer range (3.600.0: @smithy/smithy-client 3 gives the signal to the
// HTTP handler only, so the plugin passes it through the host client's `send`).
//
// The batches never form by themselves here (minBatchSize 100, batchTimeout 600 s): a call that
// settles before `flush()` was settled by its abort, and one that was not aborted waits for it.

import { createRequire } from 'node:module'
import test from 'ava'
import {
  CLAUDE,
  claudeBody,
  claudePrompt,
  inputRecords,
  ROLE_ARN,
  settle,
  startEmu,
  unique,
  waitFor,
} from './helpers.mjs'

process.env.AWS_EC2_METADATA_DISABLED = 'true'

const require = createRequire(import.meta.url)
const { batchPlugin } = require('../index.js')
const current = require('@aws-sdk/client-bedrock-runtime')
const oldest = require('sdk-runtime-3600')

const SDKS = [
  ['SDK 3.1164.0 (signal in the middleware context)', current],
  ['SDK 3.600.0 (signal through the wrapped send)', oldest],
]

// An abort settles its call in a few microtasks; this only bounds how long a broken plugin
// (the call stays queued until the batch forms, here never) keeps a test waiting.
const AT_ONCE_MS = 3000

/** The outcome of `promise` (see `settle`), or `{ pending: true }` if it has not settled within `ms`. */
async function within(promise, ms = AT_ONCE_MS) {
  let timer
  const bound = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ pending: true }), ms)
  })
  try {
    return await Promise.race([settle(promise), bound])
  } finally {
    clearTimeout(timer)
  }
}

/** A promise's outcome, and whether it has settled yet. */
function track(promise) {
  const t = { settled: false }
  t.outcome = settle(promise).then((o) => {
    t.settled = true
    return o
  })
  return t
}

function assertAbortError(t, o, what) {
  t.false(Boolean(o.pending), `${what}: settled at once, not left queued`)
  t.false(Boolean(o.ok), `${what}: rejected`)
  t.is(o.error?.name, 'AbortError', `${what}: ${o.error?.name}: ${o.error?.message}`)
  t.is(o.error?.message, 'Request aborted', what)
}

/** A BedrockRuntimeClient of `sdk` for the emulator, with the plugin on it; both closed in teardown. */
function pluggedRuntime(t, emu, sdk, { host = true, batch = {} } = {}) {
  const runtime = new sdk.BedrockRuntimeClient({
    region: emu.region,
    credentials: { ...emu.credentials },
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
  })
  const prefix = unique('plugin-abort')
  const plugin = batchPlugin({
    ...(host ? { client: runtime } : { region: emu.region, credentials: { ...emu.credentials } }),
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      minBatchSize: 100,
      maxBatchSize: 100,
      batchTimeout: 600,
      pollInterval: 0.05,
      ...batch,
    },
  })
  t.teardown(() => {
    plugin.destroy()
    runtime.destroy()
  })
  runtime.middlewareStack.use(plugin)
  return { runtime, plugin, inputPrefix: `${prefix}/in/` }
}

function invoke(sdk, text) {
  return new sdk.InvokeModelCommand({
    modelId: CLAUDE,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(claudeBody(text)),
  })
}

function converseInput(text) {
  return { modelId: CLAUDE, messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 200 } }
}

function answerOf(out) {
  return JSON.parse(Buffer.from(out.body).toString('utf8')).content[0].text
}

/** The user prompts of every record uploaded under `inputPrefix` (fillers included). */
async function uploadedPrompts(s3, emu, inputPrefix) {
  return (await inputRecords(s3, emu.bucket, inputPrefix)).map(
    (r) => claudePrompt(r.modelInput) ?? r.modelInput?.messages?.at(-1)?.content?.[0]?.text,
  )
}

const queuedToBe = (plugin, n) =>
  waitFor(`stats().queued to be ${n}`, () => plugin.stats().queued === n, { timeoutMs: 5000 })

for (const [label, sdk] of SDKS) {
  test(`${label}: an aborted queued InvokeModel rejects with AbortError at once and leaves its batch; the others are answered`, async (t) => {
    const { emu, s3 } = await startEmu(t)
    const { runtime, plugin, inputPrefix } = pluggedRuntime(t, emu, sdk)
    const marker = unique('q')
    const live = new AbortController()
    const victim = new AbortController()
    const others = [
      track(runtime.send(invoke(sdk, `${marker} other 0`))),
      track(runtime.send(invoke(sdk, `${marker} other 1`), { abortSignal: live.signal })),
      track(runtime.send(invoke(sdk, `${marker} other 2`), { abortSignal: live.signal })),
    ]
    const aborted = runtime.send(invoke(sdk, `${marker} victim`), { abortSignal: victim.signal })
    await queuedToBe(plugin, 4)

    victim.abort()
    assertAbortError(t, await within(aborted), 'the aborted call')
    t.false(
      others.some((o) => o.settled),
      'the others still wait for their batch',
    )
    t.is(plugin.stats().jobs.length, 0, 'no batch was formed before the rejection')
    await queuedToBe(plugin, 3)

    await plugin.flush()
    const outcomes = await Promise.all(others.map((o) => o.outcome))
    for (const [i, o] of outcomes.entries()) {
      t.true(o.ok, `other ${i}: ${o.error?.name}: ${o.error?.message}`)
      if (o.ok) t.true(answerOf(o.value).includes(`${marker} other ${i}`), `other ${i} got its own answer`)
    }
    const stats = plugin.stats()
    t.is(stats.jobs.length, 1, 'one job')
    t.is(stats.padded, 97, 'the job held the three others and 97 fillers, not the aborted call')
    const prompts = await uploadedPrompts(s3, emu, inputPrefix)
    t.is(prompts.length, 100, 'the emulator got one job input of 100 records')
    t.deepEqual(
      prompts.filter((p) => p?.startsWith(marker)).sort(),
      [0, 1, 2].map((i) => `${marker} other ${i}`),
    )
    t.false(prompts.includes(`${marker} victim`), 'the aborted call was never uploaded')
  })

  test(`${label}: a signal aborted before send rejects with AbortError at once, its reason as the cause, and queues nothing`, async (t) => {
    const { emu } = await startEmu(t)
    const { runtime, plugin } = pluggedRuntime(t, emu, sdk)
    const reason = new Error('the user went away')
    const o = await within(runtime.send(invoke(sdk, 'pre-aborted'), { abortSignal: AbortSignal.abort(reason) }))
    assertAbortError(t, o, 'the pre-aborted call')
    t.is(o.error?.cause, reason, 'the signal given to send() is the one the engine saw')
    const c = await within(
      runtime.send(new sdk.ConverseCommand(converseInput('pre-aborted converse')), {
        abortSignal: AbortSignal.abort(),
      }),
    )
    assertAbortError(t, c, 'the pre-aborted ConverseCommand')
    const stats = plugin.stats()
    t.is(stats.queued, 0)
    t.is(stats.jobs.length, 0)
  })

  test(`${label}: calls with a signal never aborted succeed, in each form of send (Promise, options and callback, callback only), and an abort reaches a callback`, async (t) => {
    const { emu } = await startEmu(t)
    const { runtime, plugin } = pluggedRuntime(t, emu, sdk)
    const marker = unique('cb')
    const live = new AbortController()
    const viaCallback = (cmd, options) =>
      new Promise((resolve, reject) => {
        const cb = (err, out) => (err ? reject(err) : resolve(out))
        const returned = options === undefined ? runtime.send(cmd, cb) : runtime.send(cmd, options, cb)
        t.is(returned, undefined, 'send with a callback returns nothing, as the SDK')
      })
    const promiseForm = track(runtime.send(invoke(sdk, `${marker} promise`), { abortSignal: live.signal }))
    const optionsAndCallback = track(viaCallback(invoke(sdk, `${marker} options-cb`), { abortSignal: live.signal }))
    const callbackOnly = track(viaCallback(invoke(sdk, `${marker} cb-only`)))
    const converse = track(
      runtime.send(new sdk.ConverseCommand(converseInput(`${marker} converse`)), { abortSignal: live.signal }),
    )
    const victim = new AbortController()
    const abortedCallback = viaCallback(invoke(sdk, `${marker} aborted-cb`), { abortSignal: victim.signal })
    await queuedToBe(plugin, 5)

    victim.abort()
    assertAbortError(t, await within(abortedCallback), 'the aborted call with a callback')
    t.false(
      [promiseForm, optionsAndCallback, callbackOnly, converse].some((o) => o.settled),
      'the others still wait for their batch',
    )
    await queuedToBe(plugin, 4)

    await plugin.flush()
    for (const [what, o] of [
      ['promise', promiseForm],
      ['options-cb', optionsAndCallback],
      ['cb-only', callbackOnly],
    ]) {
      const r = await o.outcome
      t.true(r.ok, `${what}: ${r.error?.name}: ${r.error?.message}`)
      if (r.ok) t.true(answerOf(r.value).includes(`${marker} ${what}`), `${what} got its own answer`)
    }
    const r = await converse.outcome
    t.true(r.ok, `converse: ${r.error?.name}: ${r.error?.message}`)
    if (r.ok) t.true(r.value.output.message.content[0].text.includes(`${marker} converse`))
    t.is(plugin.stats().queued, 0)
  })

  test(`${label}: one command object sent three times at once keeps each send's own signal`, async (t) => {
    const { emu } = await startEmu(t)
    const { runtime, plugin } = pluggedRuntime(t, emu, sdk)
    const cmd = invoke(sdk, 'the same command, three sends')
    const first = new AbortController()
    const second = new AbortController()
    const a = track(runtime.send(cmd, { abortSignal: first.signal }))
    const b = track(runtime.send(cmd, { abortSignal: second.signal }))
    const c = track(runtime.send(cmd))
    await queuedToBe(plugin, 3)

    second.abort()
    assertAbortError(
      t,
      await within(b.outcome.then((o) => (o.ok ? o.value : Promise.reject(o.error)))),
      'the second send',
    )
    t.false(a.settled || c.settled, 'the first and third sends still wait')
    await queuedToBe(plugin, 2)
    first.abort()
    assertAbortError(
      t,
      await within(a.outcome.then((o) => (o.ok ? o.value : Promise.reject(o.error)))),
      'the first send',
    )
    t.false(c.settled, 'the third send still waits')

    await plugin.flush()
    const r = await c.outcome
    t.true(r.ok, `the third send: ${r.error?.name}: ${r.error?.message}`)
    if (r.ok) t.true(answerOf(r.value).includes('the same command, three sends'))
  })

  test(`${label}: the streaming commands honour the signal: aborted while queued, answered with a live signal, ended with AbortError when aborted while read`, async (t) => {
    const { emu } = await startEmu(t)
    const { runtime, plugin } = pluggedRuntime(t, emu, sdk)
    const marker = unique('st')
    const stream = (text, signal) =>
      runtime.send(new sdk.ConverseStreamCommand(converseInput(text)), signal ? { abortSignal: signal } : undefined)
    const chunks = (text, signal) =>
      runtime.send(
        new sdk.InvokeModelWithResponseStreamCommand({
          modelId: CLAUDE,
          contentType: 'application/json',
          body: JSON.stringify(claudeBody(text)),
        }),
        signal ? { abortSignal: signal } : undefined,
      )
    const victims = [new AbortController(), new AbortController()]
    const readAborted = new AbortController()
    const live = new AbortController()
    const abortedConverse = stream(`${marker} aborted converse`, victims[0].signal)
    const abortedChunks = chunks(`${marker} aborted chunks`, victims[1].signal)
    const liveConverse = track(stream(`${marker} live converse`, live.signal))
    const liveChunks = track(chunks(`${marker} live chunks`, live.signal))
    const cutConverse = track(stream(`${marker} cut converse, tell me a long story about it`, readAborted.signal))
    await queuedToBe(plugin, 5)

    for (const v of victims) v.abort()
    assertAbortError(t, await within(abortedConverse), 'the aborted ConverseStreamCommand')
    assertAbortError(t, await within(abortedChunks), 'the aborted InvokeModelWithResponseStreamCommand')
    t.false(
      [liveConverse, liveChunks, cutConverse].some((o) => o.settled),
      'the others still wait for their batch',
    )
    await queuedToBe(plugin, 3)

    await plugin.flush()
    const [lc, lk, cc] = await Promise.all([liveConverse.outcome, liveChunks.outcome, cutConverse.outcome])
    t.true(lc.ok && lk.ok && cc.ok, [lc, lk, cc].map((o) => o.error?.message).join(' / '))
    if (!(lc.ok && lk.ok && cc.ok)) return

    const converseEvents = []
    for await (const e of lc.value.stream) converseEvents.push(e)
    t.true(
      converseEvents
        .map((e) => e.contentBlockDelta?.delta?.text ?? '')
        .join('')
        .includes(`${marker} live converse`),
      'the live ConverseStream is read whole',
    )
    const payloads = []
    for await (const e of lk.value.body) payloads.push(JSON.parse(Buffer.from(e.chunk.bytes).toString('utf8')))
    const text = payloads
      .filter((p) => p.type === 'content_block_delta')
      .map((p) => p.delta.text)
      .join('')
    t.true(text.includes(`${marker} live chunks`), 'the live InvokeModelWithResponseStream is read whole')

    // Aborted after its first event: the reader gets AbortError next, not the rest of the events.
    const it = cc.value.stream[Symbol.asyncIterator]()
    const firstEvent = await it.next()
    t.deepEqual(firstEvent.value, { messageStart: { role: 'assistant' } })
    readAborted.abort()
    const rest = await within(it.next())
    t.false(Boolean(rest.pending), 'the read ends at once')
    t.is(
      rest.error?.name,
      'AbortError',
      `the stream ends with AbortError, not ${rest.ok ? JSON.stringify(rest.value) : rest.error?.name}`,
    )
  })
}

test('SDK 3.1164.0 without a host client: the signal still comes from the middleware context', async (t) => {
  const { emu } = await startEmu(t)
  const { runtime, plugin } = pluggedRuntime(t, emu, current, { host: false })
  t.false(Object.hasOwn(runtime, 'send'), "the host's send is left as it is")
  const controller = new AbortController()
  const other = track(runtime.send(invoke(current, 'no host, other'), { abortSignal: new AbortController().signal }))
  const aborted = runtime.send(invoke(current, 'no host, victim'), { abortSignal: controller.signal })
  await queuedToBe(plugin, 2)
  controller.abort()
  assertAbortError(t, await within(aborted), 'the aborted call')
  assertAbortError(
    t,
    await within(runtime.send(invoke(current, 'no host, pre-aborted'), { abortSignal: AbortSignal.abort() })),
    'the pre-aborted call',
  )
  t.false(other.settled)
  await plugin.flush()
  const r = await other.outcome
  t.true(r.ok, `${r.error?.name}: ${r.error?.message}`)
  t.is(plugin.stats().padded, 99)
})

test('SDK 3.600.0: the signal does not reach the middleware context, so the wrapped send is what carries it', async (t) => {
  // The premise of the 3.600.0 tests: without the plugin's wrapper, a middleware sees no signal.
  const runtime = new oldest.BedrockRuntimeClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    endpoint: 'http://127.0.0.1:9',
  })
  t.teardown(() => runtime.destroy())
  const seen = []
  runtime.middlewareStack.add(
    (_next, context) => async (args) => {
      seen.push({ context: context.__smithy_context?.abortSignal, args: args.abortSignal, top: context.abortSignal })
      return { output: {}, response: undefined }
    },
    { step: 'initialize', name: 'probe', priority: 'high' },
  )
  await runtime.send(invoke(oldest, 'probe'), { abortSignal: new AbortController().signal })
  t.deepEqual(seen, [{ context: undefined, args: undefined, top: undefined }])
})
