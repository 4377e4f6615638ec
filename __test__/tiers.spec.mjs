// Price tiers (issue 20): what batch mode sends on-demand goes on Bedrock's Flex tier when the
// model offers it (`batch.flex: "fallback"`, the default), then standard when Flex stays
// throttled; `"prefer"` sends Flex models on Flex instead of batch and spills to batch jobs when
// Flex stays throttled; `"never"` keeps Flex out. Against the emulator (its Flex tier per model,
// its throttling knob, its log of each on-demand call's tier), with the package's client and the
// AWS SDK's own clients.
//
// Expected prices (docs/spend.md): Nova Pro $0.0008 / $0.0032 and Claude 3 Haiku $0.00025 /
// $0.00125 per 1,000 input / output tokens on standard; Flex and batch at half of that.

import { ConverseCommand as SdkConverseCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'

import {
  BatchInferenceClient,
  bridge,
  CLAUDE,
  claudeBody,
  InvokeModelCommand,
  listJobs,
  makeClient,
  novaBody,
  runtimeRequests,
  startEmu,
} from './helpers.mjs'

const NOVA_PRO = 'amazon.nova-pro-v1:0'
const PRICE = { [NOVA_PRO]: [0.0008, 0.0032], [CLAUDE]: [0.00025, 0.00125] }

const invoke = (modelId, text, extra = {}) =>
  new InvokeModelCommand({
    modelId,
    contentType: 'application/json',
    body: JSON.stringify(modelId === CLAUDE ? claudeBody(text) : novaBody(text)),
    ...extra,
  })

const bodyOf = (out) => JSON.parse(new TextDecoder().decode(out.body))

/** The tokens an answer reports, as the engine reads them. */
function usageOf(model, answer) {
  const u = answer.usage
  return model === CLAUDE ? [u.input_tokens, u.output_tokens] : [u.inputTokens, u.outputTokens]
}

/** What answers of `model` cost at `share` of the standard price. */
function costOf(model, answers, share) {
  const [i, o] = PRICE[model]
  return answers.reduce((sum, a) => {
    const [input, output] = usageOf(model, a)
    return sum + ((input / 1000) * i + (output / 1000) * o) * share
  }, 0)
}

const near = (t, actual, expected, what) =>
  t.true(Math.abs(actual - expected) < 1e-6, `${what}: ${actual} should be ${expected}`)

async function setFlex(emu, throttled) {
  const res = await fetch(`${emu.endpoints.bedrock.replace(/\/+$/, '')}/_emulator/flex`, {
    method: 'POST',
    body: JSON.stringify({ throttled }),
  })
  if (!res.ok) throw new Error(`/_emulator/flex: HTTP ${res.status}`)
}

const directBelowMinimum = { belowMinimum: 'direct', minBatchSize: 100 }

test('fallback (default): below the minimum, a Flex model goes on Flex and Claude on standard; stats count and price each tier', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: directBelowMinimum })
  const nova = await Promise.all([1, 2, 3].map((i) => client.send(invoke(NOVA_PRO, `nova question ${i}`))))
  const claude = await Promise.all([1, 2].map((i) => client.send(invoke(CLAUDE, `claude question ${i}`))))
  for (const out of nova) t.is(out.serviceTier, 'flex', 'the answer keeps the tier used')
  for (const out of claude) t.is(out.serviceTier, undefined, 'Claude has no Flex tier: standard')
  const seen = await runtimeRequests(emu)
  t.deepEqual(
    seen.filter((r) => r.modelId === NOVA_PRO).map((r) => r.serviceTier),
    ['flex', 'flex', 'flex'],
  )
  t.deepEqual(
    seen.filter((r) => r.modelId === CLAUDE).map((r) => r.serviceTier ?? 'none'),
    ['none', 'none'],
  )
  const s = client.stats()
  t.is(s.sentDirect, 5)
  t.like(s.tiers, { batch: { requests: 0, estimatedUsd: 0 }, flex: { requests: 3 }, standard: { requests: 2 } })
  near(t, s.tiers.flex.estimatedUsd, costOf(NOVA_PRO, nova.map(bodyOf), 0.5), 'Flex cost')
  near(t, s.tiers.standard.estimatedUsd, costOf(CLAUDE, claude.map(bodyOf), 1), 'standard cost')
  t.true(s.tiers.flex.estimatedUsd > 0)
})

test('batch.flex "never": the same requests go on standard', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { ...directBelowMinimum, flex: 'never' } })
  const outs = await Promise.all([1, 2].map((i) => client.send(invoke(NOVA_PRO, `question ${i}`))))
  for (const out of outs) t.is(out.serviceTier, undefined)
  t.deepEqual(
    (await runtimeRequests(emu)).map((r) => r.serviceTier ?? 'none'),
    ['none', 'none'],
  )
  t.like(client.stats().tiers, { flex: { requests: 0 }, standard: { requests: 2 } })
})

test('fallback: Flex throttled for longer than flexPatience, the call goes on standard', async (t) => {
  const { emu } = await startEmu(t, { flex: { throttled: true } })
  const { client } = makeClient(t, emu, { batch: { ...directBelowMinimum, flexPatience: 0.3 } })
  const outs = await Promise.all([1, 2].map((i) => client.send(invoke(NOVA_PRO, `question ${i}`))))
  for (const out of outs) {
    t.is(out.serviceTier, undefined, 'answered on standard')
    t.true(bodyOf(out).output.message.content[0].text.length > 0)
  }
  const tiers = (await runtimeRequests(emu)).map((r) => r.serviceTier ?? 'standard')
  t.true(tiers.filter((x) => x === 'flex').length >= 2, `Flex was tried first: ${tiers}`)
  t.is(tiers.filter((x) => x === 'standard').length, 2)
  t.is(tiers.at(-1), 'standard')
  t.like(client.stats().tiers, { flex: { requests: 0 }, standard: { requests: 2 } })
})

test('a caller that chose a tier keeps it', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: directBelowMinimum })
  const out = await client.send(invoke(NOVA_PRO, 'mine', { serviceTier: 'default' }))
  t.is(out.serviceTier, 'default')
  t.deepEqual(
    (await runtimeRequests(emu)).map((r) => r.serviceTier),
    ['default'],
  )
})

test('prefer: a Flex model is sent on Flex instead of batch (no job), InvokeModel and Converse alike', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { flex: 'prefer' } })
  const outs = await Promise.all([1, 2, 3, 4].map((i) => client.send(invoke(NOVA_PRO, `question ${i}`))))
  for (const out of outs) t.is(out.serviceTier, 'flex')
  const conv = await client.send(
    new bridge.ConverseCommand({
      modelId: NOVA_PRO,
      messages: [{ role: 'user', content: [{ text: 'a Converse question' }] }],
      inferenceConfig: { maxTokens: 50 },
    }),
  )
  t.deepEqual(conv.serviceTier, { type: 'flex' }, 'Converse answers carry serviceTier as AWS returns it')
  t.true(conv.output.message.content[0].text.length > 0)
  const claude = await client.send(invoke(CLAUDE, 'Claude still goes to batch'))
  t.is(claude.serviceTier, undefined)
  await client.flush()
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'one job: the Claude request')
  t.is(jobs[0].modelId, CLAUDE)
  const seen = await runtimeRequests(emu)
  t.deepEqual(
    seen.map((r) => [r.operation, r.serviceTier]),
    [...outs.map(() => ['invoke', 'flex']), ['converse', 'flex']],
  )
  t.like(client.stats().tiers, { batch: { requests: 1 }, flex: { requests: 5 }, standard: { requests: 0 } })
})

test('prefer: Flex throttled for longer than flexPatience, the requests become a batch job', async (t) => {
  const { emu, bedrock } = await startEmu(t, { flex: { throttled: true } })
  const { client } = makeClient(t, emu, { batch: { flex: 'prefer', flexPatience: 0.3 } })
  const first = await Promise.all([1, 2, 3].map((i) => client.send(invoke(NOVA_PRO, `question ${i}`))))
  for (const out of first) {
    t.is(out.serviceTier, undefined, 'answered by the job')
    t.true(bodyOf(out).output.message.content[0].text.length > 0)
  }
  // Each request leaves Flex when its own patience ends: one job, or a few when they end apart.
  const jobs = await listJobs(bedrock)
  t.true(jobs.length >= 1 && jobs.length <= 3, `${jobs.length} jobs`)
  t.true(jobs.every((j) => j.modelId === NOVA_PRO))
  const flexTries = (await runtimeRequests(emu)).filter((r) => r.serviceTier === 'flex').length
  t.true(flexTries >= 1, 'Flex was tried first')
  // Flex still throttled: a later request tries it again (the spill lasts one patience) and spills too.
  const later = await client.send(invoke(NOVA_PRO, 'after the spill'))
  t.is(later.serviceTier, undefined)
  t.like(client.stats().tiers, { batch: { requests: 4 }, flex: { requests: 0 } })
})

test('prefer: once Flex has room again, the model goes back on Flex', async (t) => {
  const { emu } = await startEmu(t, { flex: { throttled: true } })
  const { client } = makeClient(t, emu, { batch: { flex: 'prefer', flexPatience: 0.2 } })
  const spilled = await client.send(invoke(NOVA_PRO, 'spilled'))
  t.is(spilled.serviceTier, undefined)
  await setFlex(emu, false)
  // The spill lasts one patience (0.2 s); a request sent after it goes on Flex.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const again = await client.send(invoke(NOVA_PRO, 'on flex again'))
  t.is(again.serviceTier, 'flex')
})

test('tiers.flex replaces the shipped list of models with Flex', async (t) => {
  const { emu } = await startEmu(t, { flex: { models: ['amazon.nova-lite-'] } })
  const { client } = makeClient(t, emu, { batch: directBelowMinimum, tiers: { flex: ['amazon.nova-lite-'] } })
  const lite = await client.send(invoke('amazon.nova-lite-v1:0', 'lite'))
  const pro = await client.send(invoke(NOVA_PRO, 'pro'))
  t.is(lite.serviceTier, 'flex')
  t.is(pro.serviceTier, undefined)
})

test('a dry run under prefer plans Flex models on Flex', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { dryRun: true, batch: { flex: 'prefer' } })
  const sent = [1, 2, 3].map((i) => client.send(invoke(NOVA_PRO, `question ${i}`)).catch((e) => e))
  const claude = client.send(invoke(CLAUDE, 'batch')).catch((e) => e)
  const plan = await client.plan()
  const nova = plan.models.find((m) => m.modelId === NOVA_PRO)
  t.deepEqual(nova.requestsByTier, { batch: 0, flex: 3, standard: 0 })
  t.is(nova.jobs, 0)
  t.deepEqual(plan.models.find((m) => m.modelId === CLAUDE).requestsByTier, { batch: 1, flex: 0, standard: 0 })
  for (const e of await Promise.all([...sent, claude])) t.is(e.name, 'DryRunException')
  t.deepEqual(
    (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke' || r.operation === 'converse'),
    [],
    'nothing was sent',
  )
})

test('bad tier options are ValidationExceptions naming the option', async (t) => {
  const { emu } = await startEmu(t)
  for (const [options, member] of [
    [{ batch: { flex: 'sometimes' } }, /batch\.flex/],
    [{ batch: { flexPatience: -1 } }, /batch\.flexPatience/],
    [{ tiers: { flex: 'amazon.nova-pro-v1:0' } }, /tiers\.flex/],
    [{ tiers: { standard: [] } }, /tiers/],
  ]) {
    // The options are read when the client is made: the constructor throws.
    const e = t.throws(() => makeClient(t, emu, options).client.send(invoke(NOVA_PRO, 'q')))
    t.is(e.name, 'ValidationException', String(member))
    t.regex(e.message, member)
  }
})

test('emulator: a model without Flex refuses a Flex call; the throttling knob throttles Flex only', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const converse = (modelId, serviceTier) =>
    runtime.send(
      new SdkConverseCommand({
        modelId,
        messages: [{ role: 'user', content: [{ text: 'hi' }] }],
        ...(serviceTier ? { serviceTier: { type: serviceTier } } : {}),
      }),
    )
  const refused = await t.throwsAsync(() => converse(CLAUDE, 'flex'))
  t.is(refused.name, 'ValidationException')
  t.regex(refused.message, /does not support the flex service tier/)
  t.deepEqual((await converse(NOVA_PRO, 'flex')).serviceTier, { type: 'flex' })
  await setFlex(emu, true)
  const throttled = await t.throwsAsync(() => converse(NOVA_PRO, 'flex'))
  t.is(throttled.name, 'ThrottlingException')
  t.is(throttled.$metadata.httpStatusCode, 429)
  t.truthy(await converse(NOVA_PRO), 'standard is not throttled')
  await setFlex(emu, false)
  t.deepEqual((await converse(NOVA_PRO, 'flex')).serviceTier, { type: 'flex' })
})

test('a client in direct mode sends as the caller asked: no Flex of its own', async (t) => {
  const { emu } = await startEmu(t)
  const client = new BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
  })
  t.teardown(() => client.destroy())
  const out = await client.send(invoke(NOVA_PRO, 'direct'))
  t.is(out.serviceTier, undefined)
  t.like(client.stats().tiers, { standard: { requests: 1 }, flex: { requests: 0 } })
})
