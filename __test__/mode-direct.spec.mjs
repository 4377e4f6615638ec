// Direct mode: one on-demand InvokeModel per call through the Rust SDK, every option passed
// through, AWS errors kept with their names and $metadata, a concurrency limit.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, claudeText, emulatorInfo, runtimeRequests, settle, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { BatchInferenceClient, InvokeModelCommand } = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

function directClient(t, emu, extra = {}) {
  const client = new BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    ...extra,
  })
  t.teardown(() => client.destroy())
  return client
}

test('direct mode answers each call on-demand with the runtime body, byte for byte', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const client = directClient(t, emu)
  const body = JSON.stringify(claudeBody('direct hello'))
  const ours = await client.send(new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body }))
  const theirs = await runtime.send(
    new sdk.InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body }),
  )
  t.deepEqual(Buffer.from(ours.body), Buffer.from(theirs.body))
  t.true(claudeText(ours).includes('direct hello'))
  t.is(ours.contentType, 'application/json')
  t.regex(ours.$metadata.requestId, /^[0-9a-f-]{36}$/)
  t.deepEqual(Object.keys(ours), Object.keys(theirs))
  t.is(client.stats().sentDirect, 1)
  t.is(client.stats().jobs.length, 0)
})

test('direct mode passes every InvokeModel option to the server', async (t) => {
  const { emu } = await startEmu(t)
  const client = directClient(t, emu)
  const out = await client.send(
    new InvokeModelCommand({
      modelId: CLAUDE,
      contentType: 'application/json',
      accept: 'application/json',
      body: JSON.stringify(claudeBody('with options')),
      trace: 'ENABLED',
      guardrailIdentifier: 'gr123',
      guardrailVersion: '2',
      performanceConfigLatency: 'optimized',
      serviceTier: 'priority',
      requestMetadata: 'team=evals',
    }),
  )
  t.is(out.performanceConfigLatency, 'optimized')
  t.is(out.serviceTier, 'priority')
  const seen = (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke')
  t.is(seen.length, 1)
  t.like(seen[0], {
    modelId: CLAUDE,
    accept: 'application/json',
    trace: 'ENABLED',
    guardrailIdentifier: 'gr123',
    guardrailVersion: '2',
    performanceConfigLatency: 'optimized',
    serviceTier: 'priority',
    requestMetadata: 'team=evals',
  })
})

test('direct mode keeps AWS error names, status and request id', async (t) => {
  const { emu } = await startEmu(t)
  const client = directClient(t, emu)
  const cases = [
    ['[[error:400]]', 'ValidationException', 400],
    ['[[error:403]]', 'AccessDeniedException', 403],
    ['[[error:408]]', 'ModelTimeoutException', 408],
    ['[[error:424]]', 'ModelErrorException', 424],
    ['[[error:429]]', 'ThrottlingException', 429],
    ['[[error:500]]', 'InternalServerException', 500],
    ['[[error:503]]', 'ServiceUnavailableException', 503],
  ]
  for (const [marker, name, status] of cases) {
    const o = await settle(
      client.send(new InvokeModelCommand({ modelId: CLAUDE, body: JSON.stringify(claudeBody(`boom ${marker}`)) })),
    )
    t.false(o.ok, marker)
    t.is(o.error.name, name, marker)
    t.is(o.error.$metadata.httpStatusCode, status, marker)
    t.regex(o.error.$metadata.requestId ?? '', /^[0-9a-f-]{36}$/, marker)
    t.true(o.error instanceof sdk[name], `${marker}: instanceof the SDK's ${name}`)
  }
})

test('direct mode never runs more calls at once than maxConcurrency', async (t) => {
  // Each runtime call takes 300 ms at the emulator, which counts the calls it answers at once.
  const peakWith = async (maxConcurrency) => {
    const { emu } = await startEmu(t, { s3: {}, runtimeLatencyMs: 300 })
    const client = directClient(t, emu, { direct: { maxConcurrency } })
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        client.send(new InvokeModelCommand({ modelId: CLAUDE, body: JSON.stringify(claudeBody(`c${i}`)) })),
      ),
    )
    for (const [i, r] of results.entries()) t.true(claudeText(r).includes(`c${i}`))
    t.is(client.stats().sentDirect, 10)
    const stats = await emulatorInfo(emu, 'runtime-stats')
    t.is(stats.inFlight, 0)
    return stats.peak
  }
  const limited = await peakWith(2)
  t.true(limited >= 1 && limited <= 2, `at most 2 at once, saw ${limited}`)
  // The same work without a tight limit does overlap: the count above can see it.
  const open = await peakWith(8)
  t.true(open > 2, `8 allowed, saw ${open}`)
})
