// What a run will cost, before and while it runs (issue 20): a dry run's plan (`dryRun: true`,
// `client.plan()`, `demo --dry-run`, `serve --dry-run` with `GET /_bridge/plan`) and the hard cost
// cap (`maxCostUsd`, `serve --max-cost-usd`), against the emulator with real SDK clients. What
// reached the emulator is counted with @aws-sdk/client-bedrock's ListModelInvocationJobs and its S3.
//
// The expected costs come from docs/spend.md: a request's input tokens are estimated as one token
// per 4 bytes (rounded up) of the UTF-8 text of its body's string values, its output tokens are
// bounded by its max_tokens, and Claude 3 Haiku's shipped price is $0.00025 / $0.00125 per 1,000
// input / output tokens, half of it in batch.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import { createRequire } from 'node:module'
import { BedrockRuntimeClient, InvokeModelCommand as SdkInvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import test from 'ava'

import {
  BatchInferenceClient,
  bridge,
  CLAUDE,
  CLI,
  childEnv,
  claudeText,
  InvokeModelCommand,
  inputRecords,
  jobsNamed,
  listJobs,
  listKeys,
  makeClient,
  makeClients,
  mistralBody,
  runtimeRequests,
  settle,
  spawnServe,
  startEmu,
  startEmulator,
  startServe,
  unique,
  waitFor,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const demo = require('../cli/demo.js')

/** Claude 3 Haiku's standard price in the shipped table, USD per 1,000 tokens. */
const HAIKU = { input: 0.00025, output: 0.00125 }
const BATCH_SHARE = 0.5

/** The UTF-8 bytes of every string value in `v` (what the local estimate counts). */
function textBytes(v) {
  if (typeof v === 'string') return Buffer.byteLength(v)
  if (Array.isArray(v)) return v.reduce((n, x) => n + textBytes(x), 0)
  if (v !== null && typeof v === 'object') return Object.values(v).reduce((n, x) => n + textBytes(x), 0)
  return 0
}

/** The local estimate of a body's input tokens: one per 4 bytes of text, rounded up, at least 1. */
function estimatedTokens(body) {
  return Math.max(1, Math.ceil(textBytes(body) / 4))
}

/** What `input` and `output` tokens of Claude 3 Haiku cost at `share` of the standard price. */
function haikuCost(input, output, share) {
  return ((input / 1000) * HAIKU.input + (output / 1000) * HAIKU.output) * share
}

const near = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps

/** A Claude body whose prompt has the same length for every i < 1000, so every batch costs the same. */
function evenBody(i, { maxTokens = 64 } = {}) {
  const body = {
    anthropic_version: 'bedrock-2023-05-31',
    messages: [{ role: 'user', content: `What is ${String(i).padStart(3, '0')} squared?` }],
  }
  if (maxTokens !== null) body.max_tokens = maxTokens
  return body
}

function invoke(body, modelId = CLAUDE) {
  return new InvokeModelCommand({ modelId, contentType: 'application/json', body: JSON.stringify(body) })
}

/** The calls' endings by name: `{ ok: 200, CostLimitExceededException: 100 }`. */
function endings(outcomes) {
  const out = {}
  for (const o of outcomes) {
    const k = o.ok ? 'ok' : o.error?.name
    out[k] = (out[k] || 0) + 1
  }
  return out
}

// ---------------------------------------------------------------------------
// The demo's 500 questions: a dry run, then the real run, on one emulator (shared by three tests)

const DEMO_COUNT = 500
let demoRuns

test.after.always(async () => {
  if (demoRuns) await (await demoRuns.catch(() => null))?.stop()
})

/**
 * Runs the demo's questions with the demo's client options: first as a dry run (its calls held
 * until the plan is read), then for real. Once per file.
 */
function runDemoTwice() {
  demoRuns ??= (async () => {
    const emu = await startEmulator({ profile: 'fast' })
    const { bedrock, runtime, s3 } = makeClients(emu)
    const questions = demo.demoQuestions(DEMO_COUNT)
    const send = (client, q) =>
      client.send(new InvokeModelCommand({ body: demo.questionBody(q), contentType: 'application/json' }))
    try {
      // The dry run: every call is held until plan() is read.
      const dry = new BatchInferenceClient(demo.demoClientOptions(emu, { dryRun: true }))
      let settledBeforePlan = 0
      const dryCalls = questions.map((q) => settle(send(dry, q).finally(() => settledBeforePlan++)))
      // 500 calls make five full batches at once: nothing waits for batchTimeout.
      await waitFor('the dry run to hold every call in a batch', () => {
        const s = dry.stats()
        return s.queued === 0 && s.inFlight === DEMO_COUNT
      })
      const heldBeforePlan = settledBeforePlan === 0
      const plan = await dry.plan()
      const dryOutcomes = await Promise.all(dryCalls)
      await dry.close()
      dry.destroy()
      const afterDry = { jobs: (await listJobs(bedrock)).length, keys: (await listKeys(s3, emu.bucket, '')).length }

      // The real run, with the same options but dryRun.
      const real = new BatchInferenceClient(demo.demoClientOptions(emu))
      const answers = await Promise.all(questions.map((q) => settle(send(real, q))))
      await real.close()
      const stats = real.stats()
      const storedJobs = await real.jobs()
      real.destroy()
      const emulatorJobs = await listJobs(bedrock)
      return {
        plan,
        heldBeforePlan,
        dryOutcomes,
        afterDry,
        answers,
        questions,
        stats,
        storedJobs,
        emulatorJobs,
        stop: async () => {
          for (const c of [bedrock, runtime, s3]) c.destroy()
          await emu.stop()
        },
      }
    } catch (err) {
      for (const c of [bedrock, runtime, s3]) c.destroy()
      await emu.stop()
      throw err
    }
  })()
  return demoRuns
}

test("a dry run of the demo's 500 questions plans the jobs and records the real run makes, and sends nothing", async (t) => {
  const r = await runDemoTwice()
  // The dry run held every call until its plan was read, then ended each with DryRunException.
  t.true(r.heldBeforePlan, 'no call ended before plan() was read')
  t.deepEqual(endings(r.dryOutcomes), { DryRunException: DEMO_COUNT })
  t.true(r.dryOutcomes[0].error instanceof bridge.DryRunException)
  t.regex(r.dryOutcomes[0].error.message, /dry run/)
  t.deepEqual(r.afterDry, { jobs: 0, keys: 0 }, 'the dry run created no job and uploaded nothing')

  // The real run: every answer its own.
  t.deepEqual(endings(r.answers), { ok: DEMO_COUNT })
  t.true(r.answers.every((a, i) => claudeText(a.value).includes(r.questions[i])))

  const m = r.plan.models[0]
  t.is(r.plan.models.length, 1)
  t.is(m.modelId, demo.MODEL_ID)
  // Jobs and records: the plan's against the emulator's jobs, the client's stored jobs and stats.
  t.is(r.emulatorJobs.length, 5)
  t.is(m.jobs, r.emulatorJobs.length)
  t.is(m.jobs, r.storedJobs.length)
  t.is(m.jobs, r.stats.jobs.length)
  const realRecords = r.storedJobs.reduce((n, j) => n + j.totalRecordCount, 0)
  t.is(m.records + m.paddedRecords, realRecords)
  t.is(m.paddedRecords, r.stats.padded)
  t.is(m.records, DEMO_COUNT)
  t.deepEqual(m.requestsByTier, { batch: DEMO_COUNT, flex: 0, standard: 0 })
  t.is(m.outputTokensUpperBound, DEMO_COUNT * 256, 'max_tokens 256 per question')
  t.is(m.requestsWithoutMaxTokens, 0)
  t.deepEqual(
    r.plan.total,
    {
      jobs: m.jobs,
      records: m.records,
      paddedRecords: m.paddedRecords,
      requestsByTier: m.requestsByTier,
      inputTokens: m.inputTokens,
      outputTokensUpperBound: m.outputTokensUpperBound,
      requestsWithoutMaxTokens: m.requestsWithoutMaxTokens,
      costUsd: m.costUsd,
      standardCostUsd: m.standardCostUsd,
    },
    'one model: the total is its plan',
  )
})

test("the real run's cost, from its job manifests at the batch price, is at most the dry run's upper bound", async (t) => {
  const r = await runDemoTwice()
  const m = r.plan.models[0]
  const input = r.stats.jobs.reduce((n, j) => n + j.inputTokens, 0)
  const output = r.stats.jobs.reduce((n, j) => n + j.outputTokens, 0)
  t.deepEqual(r.stats.tokens, { input, output })
  t.true(input > 0 && output > 0)
  const realUsd = haikuCost(input, output, BATCH_SHARE)
  t.true(realUsd <= m.costUsd, `real $${realUsd} vs planned at most $${m.costUsd}`)
  t.true(output <= m.outputTokensUpperBound)
  // No fillers: everything at the standard price is twice the batch price (each rounded to 1e-6).
  t.is(m.paddedRecords, 0)
  t.true(near(m.standardCostUsd, 2 * m.costUsd, 2e-6), `${m.standardCostUsd} vs 2 × ${m.costUsd}`)
  // The plan's cost is its own tokens at the batch price.
  t.true(near(m.costUsd, haikuCost(m.inputTokens, m.outputTokensUpperBound, BATCH_SHARE), 1e-6))
})

// Passes once the emulator serves CountTokens (`POST /model/{modelId}/count-tokens`) with the
// counts its responders report as input usage.
test("the dry run counts Claude's input tokens with CountTokens, within 10% of the real run's manifests", async (t) => {
  const r = await runDemoTwice()
  const m = r.plan.models[0]
  t.is(
    m.inputTokensMethod,
    'count-tokens',
    "every question's tokens counted with the runtime's CountTokens (the emulator must serve POST /model/{modelId}/count-tokens)",
  )
  const real = r.stats.tokens.input
  t.true(
    Math.abs(m.inputTokens - real) <= real * 0.1,
    `planned ${m.inputTokens} input tokens, the manifests say ${real}`,
  )
})

// ---------------------------------------------------------------------------
// A dry run's other ends

test('a dry run: close() ends the calls it holds with DryRunException; the next plan() has only the calls after the last', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const { client, prefix } = makeClient(t, emu, { modelId: CLAUDE, dryRun: true, batch: { batchTimeout: 30 } })
  // 130 calls: a full batch, and 30 below the minimum that wait for batchTimeout (30 s) to be padded.
  const first = Array.from({ length: 130 }, (_, i) => settle(client.send(invoke(evenBody(i)))))
  const plan = await client.plan()
  t.like(plan.total, { jobs: 2, records: 130, paddedRecords: 70, requestsByTier: { batch: 130, flex: 0, standard: 0 } })
  t.deepEqual(endings(await Promise.all(first)), { DryRunException: 130 })

  // Later calls are held for the next plan, which has only them.
  const second = Array.from({ length: 10 }, (_, i) => settle(client.send(invoke(evenBody(i)))))
  const again = await client.plan()
  t.like(again.total, { jobs: 1, records: 10, paddedRecords: 90 })
  t.deepEqual(endings(await Promise.all(second)), { DryRunException: 10 })

  // close() ends what is held, without a plan.
  const third = Array.from({ length: 5 }, (_, i) => settle(client.send(invoke(evenBody(i)))))
  await client.close()
  const ended = await Promise.all(third)
  t.deepEqual(endings(ended), { DryRunException: 5 })
  t.true(ended[0].error instanceof bridge.DryRunException)
  t.regex(ended[0].error.message, /closed/)
  t.deepEqual(await listJobs(bedrock), [], 'no job')
  t.deepEqual(await listKeys(s3, emu.bucket, `${prefix}/`), [], 'nothing uploaded')
})

test('plan() without dryRun rejects with ValidationException naming dryRun', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { modelId: CLAUDE })
  const err = await t.throwsAsync(client.plan())
  t.is(err.name, 'ValidationException')
  t.true(err instanceof bridge.ValidationException)
  t.regex(err.message, /dryRun/)
})

// ---------------------------------------------------------------------------
// The cost cap

/** The upper-bound batch cost of `n` calls of `evenBody` (all alike). */
function evenBatchCost(n, maxTokens = 64) {
  return n * haikuCost(estimatedTokens(evenBody(0)), maxTokens, BATCH_SHARE)
}

test('maxCostUsd between two batches and three: two jobs run, the third batch is not sent and its calls reject with CostLimitExceededException', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const oneBatch = evenBatchCost(100)
  const cap = oneBatch * 2.5
  const { client, inputPrefix } = makeClient(t, emu, { modelId: CLAUDE, maxCostUsd: cap })
  t.deepEqual(client.stats().spend, { committedUsd: 0, maxCostUsd: cap })
  const outcomes = await Promise.all(Array.from({ length: 300 }, (_, i) => settle(client.send(invoke(evenBody(i))))))
  await client.close()

  t.deepEqual(endings(outcomes), { ok: 200, CostLimitExceededException: 100 })
  outcomes.forEach((o, i) => {
    if (o.ok) t.true(claudeText(o.value).includes(evenBody(i).messages[0].content))
  })
  const refused = outcomes.filter((o) => !o.ok).map((o) => o.error)
  const e = refused[0]
  t.true(e instanceof bridge.CostLimitExceededException)
  t.is(e.$metadata.httpStatusCode, 402)
  t.regex(e.message, /maxCostUsd/)
  t.is(e.capUsd, cap)
  t.true(near(e.estimateUsd, oneBatch), `estimate ${e.estimateUsd} vs one batch ${oneBatch}`)
  t.true(near(e.committedUsd, 2 * oneBatch), `committed ${e.committedUsd} vs two batches ${2 * oneBatch}`)
  t.true(e.committedUsd + e.estimateUsd > cap && e.committedUsd <= cap)
  t.true(refused.every((x) => x.capUsd === cap && x.committedUsd === e.committedUsd))

  // What reached the emulator (its own for this test): two jobs of 100, 200 records uploaded.
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 2)
  t.true(jobs.every((j) => j.status === 'Completed'))
  t.is((await inputRecords(s3, emu.bucket, inputPrefix)).length, 200, 'the refused batch was never uploaded')
  const s = client.stats()
  t.is(s.spend.maxCostUsd, cap)
  t.true(near(s.spend.committedUsd, 2 * oneBatch))
  t.like(s, { queued: 0, inFlight: 0 })
})

test('under a cap, a call without max_tokens or without a price rejects with ValidationException naming it; its batch neighbours go on', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { modelId: CLAUDE, maxCostUsd: 1 })
  const unbounded = settle(client.send(invoke(evenBody(0, { maxTokens: null }))))
  const unpriced = 'mistral.mistral-7b-instruct-v0:2'
  const noPrice = settle(client.send(invoke(mistralBody('no price'), unpriced)))
  const neighbours = Array.from({ length: 100 }, (_, i) => settle(client.send(invoke(evenBody(i)))))

  const u = await unbounded
  t.is(u.error?.name, 'ValidationException')
  t.regex(u.error.message, /max_tokens/)
  const p = await noPrice
  t.is(p.error?.name, 'ValidationException')
  t.true(p.error.message.includes(unpriced) && /pricing/.test(p.error.message), p.error.message)

  t.deepEqual(endings(await Promise.all(neighbours)), { ok: 100 })
  await client.close()
  t.is((await listJobs(bedrock)).length, 1)
  t.true(near(client.stats().spend.committedUsd, evenBatchCost(100)), 'only the batch was committed')
})

test('under a cap, calls sent on-demand commit their standard cost: one of three goes, the others reject', async (t) => {
  const { emu } = await startEmu(t)
  const oneCall = haikuCost(estimatedTokens(evenBody(0)), 64, 1)
  const cap = oneCall * 1.5
  const { client } = makeClient(t, emu, { modelId: CLAUDE, maxCostUsd: cap, batch: { belowMinimum: 'direct' } })
  const before = (await runtimeRequests(emu)).length
  const outcomes = await Promise.all([0, 1, 2].map((i) => settle(client.send(invoke(evenBody(i))))))
  t.deepEqual(endings(outcomes), { ok: 1, CostLimitExceededException: 2 })
  const e = outcomes.find((o) => !o.ok).error
  t.true(near(e.estimateUsd, oneCall) && near(e.committedUsd, oneCall))
  t.is((await runtimeRequests(emu)).length - before, 1, 'one call reached the runtime')
  t.true(near(client.stats().spend.committedUsd, oneCall))
})

// ---------------------------------------------------------------------------
// serve --dry-run and --max-cost-usd, as a child process called by the JavaScript SDK

/** Starts serve (helpers.mjs) under a prefix of the spend tests. */
const startSpendServe = (t, emu, options = {}) => startServe(t, emu, { prefix: unique('spend'), ...options })

/** The runtime client of a caller of serve: many calls at once over HTTP/1.1, no retries. */
function callerOf(t, url, region) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  const client = new BedrockRuntimeClient({
    region,
    endpoint: url,
    credentials: { accessKeyId: 'test-dummy-access-key', secretAccessKey: 'test-dummy-secret-key' },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
  })
  t.teardown(() => {
    client.destroy()
    agent.destroy()
  })
  return client
}

function sdkInvoke(body) {
  return new SdkInvokeModelCommand({
    modelId: CLAUDE,
    contentType: 'application/json',
    accept: 'application/json',
    body: JSON.stringify(body),
  })
}

async function getJson(url) {
  const res = await fetch(url)
  return { status: res.status, errorType: res.headers.get('x-amzn-errortype'), body: await res.json() }
}

test('serve --dry-run holds the calls; GET /_bridge/plan answers the plan and ends them with DryRunException; nothing reaches the emulator', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startSpendServe(t, emu, { args: ['--dry-run'], batch: { maxBatchSize: 100, batchTimeout: 30 } })
  await srv.stderrMatches(/a dry run: calls are held, nothing is sent; the plan at http:\S+\/_bridge\/plan/)
  const caller = callerOf(t, srv.url, emu.region)
  const calls = Array.from({ length: 150 }, (_, i) => settle(caller.send(sdkInvoke(evenBody(i)))))
  await waitFor('serve to hold the 150 calls', async () => {
    const s = (await getJson(`${srv.url}/_bridge/stats`)).body
    return s.queued + s.inFlight === 150
  })
  const plan = await getJson(`${srv.url}/_bridge/plan`)
  t.is(plan.status, 200)
  t.like(plan.body.total, {
    jobs: 2,
    records: 150,
    paddedRecords: 50,
    requestsByTier: { batch: 150, flex: 0, standard: 0 },
    outputTokensUpperBound: 150 * 64 + 50,
    requestsWithoutMaxTokens: 0,
  })
  t.is(plan.body.models[0].modelId, CLAUDE)
  t.true(plan.body.total.costUsd < plan.body.total.standardCostUsd)
  const outcomes = await Promise.all(calls)
  t.deepEqual(endings(outcomes), { DryRunException: 150 })
  t.is(outcomes[0].error.$metadata.httpStatusCode, 400)
  t.regex(outcomes[0].error.message, /dry run/)

  // A later call waits for the next plan.
  const later = settle(caller.send(sdkInvoke(evenBody(7))))
  await waitFor(
    'serve to hold the later call',
    async () => (await getJson(`${srv.url}/_bridge/stats`)).body.queued === 1,
  )
  t.like((await getJson(`${srv.url}/_bridge/plan`)).body.total, { jobs: 1, records: 1, paddedRecords: 99 })
  t.is((await later).error?.name, 'DryRunException')

  t.deepEqual(await jobsNamed(bedrock, srv.prefix), [], 'no job')
  t.deepEqual(await listKeys(s3, emu.bucket, `${srv.prefix}/`), [], 'nothing uploaded')
})

test("serve --max-cost-usd (over the config file's maxCostUsd): two jobs of three run, the third's calls get CostLimitExceededException (402); stats show the spend", async (t) => {
  // Jobs of 10 records, which this emulator takes.
  const { emu, bedrock } = await startEmu(t, { minRecords: 10 })
  const oneBatch = evenBatchCost(10)
  const cap = oneBatch * 2.5
  const srv = await startSpendServe(t, emu, {
    batch: { minBatchSize: 10, maxBatchSize: 10 },
    config: { maxCostUsd: 1000 },
    args: ['--max-cost-usd', String(cap)],
  })
  await srv.stderrMatches(/cost cap \$/)
  const caller = callerOf(t, srv.url, emu.region)
  const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => settle(caller.send(sdkInvoke(evenBody(i))))))
  t.deepEqual(endings(outcomes), { ok: 20, CostLimitExceededException: 10 })
  const e = outcomes.find((o) => !o.ok).error
  t.is(e.$metadata.httpStatusCode, 402)
  t.regex(e.message, /maxCostUsd/)
  t.is((await jobsNamed(bedrock, srv.prefix)).length, 2)
  const stats = (await getJson(`${srv.url}/_bridge/stats`)).body
  t.is(stats.spend.maxCostUsd, cap)
  t.true(near(stats.spend.committedUsd, 2 * oneBatch), `${stats.spend.committedUsd} vs ${2 * oneBatch}`)

  // Not a dry run: no plan, said in AWS's error shape.
  const plan = await getJson(`${srv.url}/_bridge/plan`)
  t.is(plan.status, 400)
  t.regex(plan.errorType, /^ValidationException/)
  t.regex(plan.body.message, /dryRun/)
})

test('serve: --max-cost-usd needs an amount above 0; --dry-run with a store is refused', async (t) => {
  for (const bad of ['0', '-1', 'lots']) {
    const r = spawnServe(['--max-cost-usd', bad, '--port', '0'], childEnv())
    const exited = await r.exited
    t.is(exited.code, 2, bad)
    t.regex(exited.stderr, /--max-cost-usd needs an amount of USD above 0/, bad)
  }
  const r = spawnServe(
    ['--dry-run', '--store', 'postgres://u:p@127.0.0.1:9/db', '--port', '0', '--region', 'us-east-1'],
    childEnv(),
  )
  const exited = await r.exited
  t.is(exited.code, 2)
  t.regex(exited.stderr, /dryRun cannot be used with store/)
})

// ---------------------------------------------------------------------------
// demo --dry-run, as its users run it

async function runCli(args, { timeoutMs = 90_000 } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'close')
  clearTimeout(timer)
  return { code, out, err }
}

test("demo --dry-run --json prints the plan, whose jobs and records are a real demo run's", async (t) => {
  const [dry, real] = await Promise.all([
    runCli(['demo', '--dry-run', '--json', '--count', '150']),
    runCli(['demo', '--json', '--count', '150', '--profile', 'fast']),
  ])
  t.is(dry.code, 0, dry.err)
  t.is(real.code, 0, real.err)
  const plan = JSON.parse(dry.out.trim())
  const summary = JSON.parse(real.out.trim())
  t.is(plan.total.jobs, summary.jobs)
  t.is(plan.total.records, summary.questions)
  t.is(plan.total.paddedRecords, summary.paddedRecords)
  t.is(plan.total.records + plan.total.paddedRecords, summary.records)
  t.is(plan.models[0].modelId, summary.modelId)
  t.deepEqual(Object.keys(plan).sort(), ['models', 'total'])
  t.true(['count-tokens', 'count-tokens-sample', 'estimate'].includes(plan.models[0].inputTokensMethod))
})

test('demo --dry-run prints the plan as a table', async (t) => {
  const r = await runCli(['demo', '--dry-run', '--count', '150'])
  t.is(r.code, 0, r.err)
  t.regex(r.out, /^\s+anthropic\.claude-3-haiku-20240307-v1:0\s+total$/m)
  t.regex(r.out, /^jobs\s+2\s+2$/m)
  t.regex(r.out, /^records \(requests in jobs\)\s+150\s+150$/m)
  t.regex(r.out, /^padded records\s+50\s+50$/m)
  t.regex(r.out, /^requests at batch\s+150\s+150$/m)
  t.regex(r.out, /^input tokens\s+[\d,]+\s+[\d,]+$/m)
  t.regex(r.out, /^ {2}counted by\s+(CountTokens|estimate)/m)
  t.regex(r.out, /^output tokens, upper bound\s+38,450\s+38,450$/m)
  t.regex(r.out, /^cost at these tiers \(USD\)\s+\$0\.\d{6}\s+\$0\.\d{6}$/m)
  t.regex(r.out, /^cost all standard \(USD\)\s+\$0\.\d{6}\s+\$0\.\d{6}$/m)
  t.regex(r.out, /Each of the 150 calls ended with DryRunException/)
  const help = await runCli(['demo', '--help'])
  t.regex(help.out, /--dry-run/)
})
