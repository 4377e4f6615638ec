// The parity suite (issue 4): the same commands through the real BedrockRuntimeClient (pointed at
// the emulator's runtime) and through our client in `direct` and `batch` modes give the same
// output — keys, key order, value types, body bytes, transformToString results, $metadata keys —
// and the same faults give the same exceptions (name, instanceof, $fault, status, keys).
//
// The emulator answers from the model id and the body alone, so the runtime and the batch path
// give the same bytes; what legitimately differs is the $metadata values (request ids).

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import test from 'ava'
import {
  CLAUDE,
  claudeBody,
  describe,
  INDEX_JS,
  makeClient,
  NOVA,
  novaBody,
  ROLE_ARN,
  settle,
  startEmu,
  unique,
  waitFor,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const { BatchInferenceClient, batchPlugin } = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

/** One command per model family the emulator answers, with that family's body. */
const FAMILIES = [
  ['Claude', CLAUDE, claudeBody('Parity Claude: what is 6 x 7?')],
  ['Nova', NOVA, novaBody('Parity Nova: name a colour.')],
  [
    'Llama',
    'meta.llama3-8b-instruct-v1:0',
    {
      prompt:
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nParity Llama: say hi.<|eot_id|><|start_header_id|>assistant<|end_header_id|>',
      max_gen_len: 128,
    },
  ],
  [
    'Mistral',
    'mistral.mistral-7b-instruct-v0:2',
    { prompt: '<s>[INST] Parity Mistral: count to 3. [/INST]', max_tokens: 100 },
  ],
  [
    'Titan text',
    'amazon.titan-text-express-v1',
    { inputText: 'Parity Titan: what is the sky?', textGenerationConfig: { maxTokenCount: 100 } },
  ],
  ['Titan embeddings', 'amazon.titan-embed-text-v2:0', { inputText: 'Parity embedding ✓ ünïcödé', dimensions: 256 }],
]

function command(modelId, body, extra = {}) {
  return new sdk.InvokeModelCommand({
    modelId,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(body),
    ...extra,
  })
}

function directClient(t, emu) {
  const client = new BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
  })
  t.teardown(() => client.destroy())
  return client
}

/** `typeof` of each own enumerable value, in key order: the shape a caller can observe. */
function shape(obj) {
  return Object.entries(obj).map(([k, v]) => [k, v === null ? 'null' : typeof v])
}

/** Asserts that `ours` (direct or batch) is observably the output the real SDK gave. */
function assertSameOutput(t, ours, real, label) {
  t.deepEqual(Object.keys(ours), Object.keys(real), `${label}: output keys and their order`)
  t.deepEqual(shape(ours), shape(real), `${label}: value types`)
  t.is(ours.contentType, real.contentType, `${label}: contentType`)
  t.is(ours.performanceConfigLatency, real.performanceConfigLatency, `${label}: performanceConfigLatency`)
  t.is(ours.serviceTier, real.serviceTier, `${label}: serviceTier`)

  // The body: a Uint8Array with transformToString, with the same bytes.
  t.true(real.body instanceof Uint8Array && ours.body instanceof Uint8Array, `${label}: body is a Uint8Array`)
  t.is(typeof ours.body.transformToString, 'function', `${label}: body.transformToString`)
  t.true(
    Buffer.from(ours.body).equals(Buffer.from(real.body)),
    `${label}: body bytes\n ours: ${Buffer.from(ours.body)}\n real: ${Buffer.from(real.body)}`,
  )
  t.is(ours.body.transformToString(), real.body.transformToString(), `${label}: transformToString()`)
  t.is(
    ours.body.transformToString('utf-8'),
    real.body.transformToString('utf-8'),
    `${label}: transformToString('utf-8')`,
  )
  t.is(
    ours.body.transformToString('base64'),
    real.body.transformToString('base64'),
    `${label}: transformToString('base64')`,
  )
  // The SDK's body owns its buffer: code that reads `body.buffer` sees this answer only.
  t.is(real.body.byteOffset, 0)
  t.is(real.body.buffer.byteLength, real.body.byteLength)
  t.is(ours.body.byteOffset, 0, `${label}: body.byteOffset`)
  t.is(ours.body.buffer.byteLength, ours.body.byteLength, `${label}: body.buffer holds this body only`)

  // $metadata: the same keys and types; the values (request ids) are each call's own.
  t.deepEqual(Object.keys(ours.$metadata), Object.keys(real.$metadata), `${label}: $metadata keys`)
  t.deepEqual(shape(ours.$metadata), shape(real.$metadata), `${label}: $metadata value types`)
  t.is(ours.$metadata.httpStatusCode, real.$metadata.httpStatusCode, `${label}: httpStatusCode`)
}

/** A real BedrockRuntimeClient with the batch plugin on it. */
function pluginClient(t, emu) {
  const host = new sdk.BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
  })
  const prefix = unique('parity-plugin')
  const plugin = batchPlugin({
    client: host,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  host.middlewareStack.use(plugin)
  t.teardown(() => {
    plugin.destroy()
    host.destroy()
  })
  return { host, plugin }
}

test('every model family gives the SDK output, byte for byte and key for key, in direct and batch mode and through the plugin', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const direct = directClient(t, emu)
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 0.05 } })
  const { host, plugin } = pluginClient(t, emu)

  const batchOuts = FAMILIES.map(([, modelId, body]) => settle(batch.send(command(modelId, body))))
  const pluginOuts = FAMILIES.map(([, modelId, body]) => settle(host.send(command(modelId, body))))
  for (const [i, [family, modelId, body]] of FAMILIES.entries()) {
    const real = await runtime.send(command(modelId, body))
    const d = await settle(direct.send(command(modelId, body)))
    const b = await batchOuts[i]
    const p = await pluginOuts[i]
    if (!d.ok || !b.ok || !p.ok) {
      t.fail(`${family}: direct ${describe(d)}, batch ${describe(b)}, plugin ${describe(p)}`)
      continue
    }
    assertSameOutput(t, d.value, real, `${family} direct`)
    assertSameOutput(t, b.value, real, `${family} batch`)
    assertSameOutput(t, p.value, real, `${family} plugin`)
  }
  t.is(batch.stats().sentDirect, 0, 'the batch client answered from jobs')
  t.is(batch.stats().jobs.length, FAMILIES.length, 'one job per model')
  t.is(plugin.stats().jobs.length, FAMILIES.length, 'the plugin ran one job per model')
})

test('the on-demand tiers are echoed in direct mode as the SDK has them, and absent in batch mode, which does not run on them', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const direct = directClient(t, emu)
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 0.05 } })
  const cmd = () =>
    command(CLAUDE, claudeBody('Parity tiers'), { performanceConfigLatency: 'optimized', serviceTier: 'priority' })
  const real = await runtime.send(cmd())
  t.deepEqual(Object.keys(real), ['body', 'contentType', 'performanceConfigLatency', 'serviceTier', '$metadata'])
  assertSameOutput(t, await direct.send(cmd()), real, 'direct')
  // A batch job has no latency or service tier: the answer is what the SDK gives when the
  // service echoes none (the SDK then has no such keys either).
  const b = await batch.send(cmd())
  t.is(batch.stats().sentDirect, 0, 'it ran in a job')
  const { performanceConfigLatency, serviceTier, ...untiered } = real
  assertSameOutput(t, b, untiered, 'batch')
})

test('our own InvokeModelCommand and a string, Buffer or Uint8Array body give the same output as the SDK', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 0.05 } })
  const text = JSON.stringify(claudeBody('Parity body forms'))
  const real = await runtime.send(new sdk.InvokeModelCommand({ modelId: CLAUDE, body: text }))
  const bodies = [text, Buffer.from(text), new TextEncoder().encode(text)]
  const outs = await Promise.all(bodies.map((body) => batch.invokeModel({ modelId: CLAUDE, body })))
  for (const [i, out] of outs.entries()) assertSameOutput(t, out, real, `body form ${i}`)
})

// ===== faults =====

/** Asserts that `ours` is the exception the real SDK threw for the same fault. */
function assertSameError(t, ours, real, label) {
  t.is(ours?.name, real.name, `${label}: name (${ours?.name}: ${ours?.message})`)
  t.is(ours?.$fault, real.$fault, `${label}: $fault`)
  t.is(ours?.$metadata?.httpStatusCode, real.$metadata.httpStatusCode, `${label}: $metadata.httpStatusCode`)
  t.deepEqual(Object.keys(ours?.$metadata ?? {}), Object.keys(real.$metadata), `${label}: $metadata keys`)
  t.deepEqual(Object.keys(ours ?? {}), Object.keys(real), `${label}: own enumerable keys, in order`)
  t.is(typeof ours?.message, 'string', `${label}: message`)
  t.true(ours?.message.length > 0, `${label}: message is not empty`)
  for (const cls of ['ThrottlingException', 'ValidationException', 'BedrockRuntimeServiceException', real.name]) {
    t.is(ours instanceof sdk[cls], real instanceof sdk[cls], `${label}: instanceof ${cls}`)
  }
  t.is(ours instanceof Error, true, `${label}: instanceof Error`)
}

async function realError(runtime, cmd) {
  const o = await settle(runtime.send(cmd))
  if (o.ok) throw new Error('the real SDK call was expected to fail')
  return o.error
}

/** Keys of the errors the client adds itself (batch only): where the record was. */
const BATCH_EXTRA_KEYS = ['jobArn', 'recordId']

test('the same record faults give the same exceptions in direct and batch mode as through the SDK', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const direct = directClient(t, emu)
  // maxAttempts 2: the retryable codes (408, 429, 5xx) are tried again, then given up.
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 0.05, maxAttempts: 2 } })
  const codes = [400, 403, 404, 408, 424, 429, 500, 503]
  const cmd = (code) => command(CLAUDE, claudeBody(`Parity fault [[error:${code}]]`))
  const batchOuts = codes.map((code) => settle(batch.send(cmd(code))))
  for (const [i, code] of codes.entries()) {
    const real = await realError(runtime, cmd(code))
    const d = await settle(direct.send(cmd(code)))
    const b = await batchOuts[i]
    t.false(d.ok, `direct ${code}`)
    t.false(b.ok, `batch ${code}`)
    if (d.ok || b.ok) continue
    assertSameError(t, d.error, real, `direct ${code}`)
    // A batch error also says which record of which job it was.
    const { jobArn, recordId } = b.error
    t.truthy(jobArn && recordId, `batch ${code}: jobArn and recordId`)
    t.deepEqual(Object.keys(b.error).slice(-2), BATCH_EXTRA_KEYS, `batch ${code}: the record's place comes last`)
    const withoutPlace = Object.assign(Object.create(Object.getPrototypeOf(b.error)), b.error)
    for (const k of BATCH_EXTRA_KEYS) delete withoutPlace[k]
    assertSameError(t, withoutPlace, real, `batch ${code}`)
    t.is(b.error instanceof sdk[real.name], true, `batch ${code}: the error itself is the SDK's ${real.name}`)
  }
  const s = batch.stats()
  t.true(
    s.resubmitted >= 4,
    `the retryable codes were resubmitted before they were given up (resubmitted ${s.resubmitted})`,
  )
})

test('bodies the service refuses give the same exception in direct and batch mode as through the SDK', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const direct = directClient(t, emu)
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 0.05, maxAttempts: 1 } })
  const cases = [
    // Rejected by the batch client before it is queued.
    [
      'a body that is not JSON',
      () => new sdk.InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body: '{"not json' }),
    ],
    [
      'a contentType other than JSON',
      () =>
        new sdk.InvokeModelCommand({
          modelId: CLAUDE,
          contentType: 'text/plain',
          body: JSON.stringify(claudeBody('x')),
        }),
    ],
    // Accepted into the batch and refused by the model there.
    [
      'a Claude body without anthropic_version',
      () => command(CLAUDE, { max_tokens: 10, messages: [{ role: 'user', content: 'no version' }] }),
    ],
  ]
  for (const [label, cmd] of cases) {
    const real = await realError(runtime, cmd())
    t.is(real.name, 'ValidationException', `${label}: the SDK's error`)
    const d = await settle(direct.send(cmd()))
    const b = await settle(batch.send(cmd()))
    t.false(d.ok, `direct: ${label}`)
    t.false(b.ok, `batch: ${label}`)
    if (d.ok || b.ok) continue
    assertSameError(t, d.error, real, `direct: ${label}`)
    const withoutPlace = Object.assign(Object.create(Object.getPrototypeOf(b.error)), b.error)
    for (const k of BATCH_EXTRA_KEYS) delete withoutPlace[k]
    assertSameError(t, withoutPlace, real, `batch: ${label}`)
  }
})

test("without the SDK installed, errors are our classes with the SDK's name, $fault, $metadata and keys", async (t) => {
  const { emu, runtime } = await startEmu(t)
  const cmd = (code) => command(CLAUDE, claudeBody(`Parity fallback [[error:${code}]]`))
  const reals = { 400: await realError(runtime, cmd(400)), 429: await realError(runtime, cmd(429)) }
  // A child in which `@aws-sdk/client-bedrock-runtime` cannot be resolved, as in an app without it.
  const script = `
const Module = require('node:module')
const resolve = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (request === '@aws-sdk/client-bedrock-runtime') throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' })
  return resolve.call(this, request, ...rest)
}
const bridge = require(${JSON.stringify(INDEX_JS)})
const emu = ${JSON.stringify({ region: emu.region, credentials: emu.credentials, endpoints: emu.endpoints })}
const client = new bridge.BatchInferenceClient({ mode: 'direct', ...emu })
const body = (code) => JSON.stringify(${JSON.stringify(claudeBody('Parity fallback'))}).replace('fallback', 'fallback [[error:' + code + ']]')
Promise.all([400, 429].map((code) => client.send(new bridge.InvokeModelCommand({ modelId: ${JSON.stringify(CLAUDE)}, contentType: 'application/json', accept: 'application/json', body: body(code) })).then(
  () => ({ code, resolved: true }),
  (e) => ({ code, name: e.name, keys: Object.keys(e), metadataKeys: Object.keys(e.$metadata), fault: e.$fault, status: e.$metadata.httpStatusCode,
    message: e.message, ours: e instanceof bridge[e.name], base: e instanceof bridge.BedrockBatchBridgeException, error: e instanceof Error }),
))).then((r) => { console.log(JSON.stringify(r)); client.destroy() })
`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  t.is(code, 0, err)
  const results = JSON.parse(out.trim().split('\n').at(-1))
  for (const r of results) {
    const real = reals[r.code]
    t.like(
      r,
      {
        name: real.name,
        fault: real.$fault,
        status: real.$metadata.httpStatusCode,
        message: real.message,
        ours: true,
        base: true,
        error: true,
      },
      `code ${r.code}`,
    )
    t.deepEqual(r.keys, Object.keys(real), `code ${r.code}: own enumerable keys`)
    t.deepEqual(r.metadataKeys, Object.keys(real.$metadata), `code ${r.code}: $metadata keys`)
  }
})

test("an abort gives the SDK's AbortError in direct and batch mode, before the send and while it waits", async (t) => {
  const { emu, runtime } = await startEmu(t)
  const direct = directClient(t, emu)
  // A long batchTimeout: the request is still queued when it is aborted.
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 60 } })
  const cmd = () => command(CLAUDE, claudeBody('Parity abort'))
  const abortedBefore = async (client) => {
    const o = await settle(client.send(cmd(), { abortSignal: AbortSignal.abort() }))
    return o.ok ? null : o.error
  }
  const abortedWhileWaiting = async (client) => {
    const controller = new AbortController()
    const pending = settle(client.send(cmd(), { abortSignal: controller.signal }))
    controller.abort()
    const o = await pending
    return o.ok ? null : o.error
  }
  for (const [when, abort] of [
    ['before the send', abortedBefore],
    ['while it waits', abortedWhileWaiting],
  ]) {
    const real = await abort(runtime)
    t.is(real?.name, 'AbortError', `the SDK's abort ${when}`)
    for (const [mode, client] of [
      ['direct', direct],
      ['batch', batch],
    ]) {
      const ours = await abort(client)
      const label = `${mode}, ${when}`
      t.is(ours?.name, real.name, `${label}: name`)
      t.is(ours?.message, real.message, `${label}: message`)
      t.deepEqual(Object.keys(ours ?? {}), Object.keys(real), `${label}: own enumerable keys`)
      t.true(ours instanceof Error, `${label}: instanceof Error`)
      t.is(ours?.cause?.name, 'AbortError', `${label}: the signal's reason is the cause`)
    }
  }
  // A reason of the caller's own is kept as the cause, the message stays the SDK's.
  const reason = new Error('the user went away')
  const o = await settle(batch.send(cmd(), { abortSignal: AbortSignal.abort(reason) }))
  t.is(o.error?.message, 'Request aborted')
  t.is(o.error?.cause, reason)
  await waitFor('the aborted requests to leave the queue', () => batch.stats().queued === 0, { timeoutMs: 5000 })
  t.is(batch.stats().queued, 0)
})
