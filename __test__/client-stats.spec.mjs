// stats().estimatedSavingUsd from per-job manifest tokens, and an abort after upload.
import test from 'ava'
import { CLAUDE, claudeCommand, claudeText, makeClient, settle, startEmu, waitFor } from './helpers.mjs'

test('with pricing, stats() reports half the on-demand cost of the tokens as the saving', async (t) => {
  const { emu } = await startEmu(t)
  const pricing = { [CLAUDE]: { inputPer1kTokens: 0.25, outputPer1kTokens: 1.25 } }
  const { client } = makeClient(t, emu, { pricing, batch: { batchTimeout: 0.05 } })
  t.is(client.stats().estimatedSavingUsd, 0)
  await Promise.all(Array.from({ length: 20 }, (_, i) => client.send(claudeCommand(`priced ${i}`))))
  const s = client.stats()
  t.is(s.jobs.length, 1)
  const job = s.jobs[0]
  t.true(job.inputTokens > 0 && job.outputTokens > 0)
  t.is(job.inputTokens, s.tokens.input)
  const expected = ((job.inputTokens / 1000) * 0.25 + (job.outputTokens / 1000) * 1.25) * 0.5
  t.true(Math.abs(s.estimatedSavingUsd - expected) < 1e-6, `${s.estimatedSavingUsd} vs ${expected}`)
})

test('without pricing, stats() has no saving estimate', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu)
  t.false('estimatedSavingUsd' in client.stats())
})

test('an abort after upload rejects at once with AbortError and the others still resolve', async (t) => {
  // A slow job keeps its records in flight long enough to abort one after it was uploaded.
  const { emu } = await startEmu(t, { slowJobSeconds: 2 })
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.05, minBatchSize: 100 } })
  const controller = new AbortController()
  const victim = settle(client.send(claudeCommand('abort me [[job:slow]]'), { abortSignal: controller.signal }))
  const others = Array.from({ length: 5 }, (_, i) => settle(client.send(claudeCommand(`keep ${i}`))))
  await waitFor('the job to be created', () => client.stats().jobs.length === 1 && client.stats().queued === 0)
  const t0 = performance.now()
  controller.abort()
  const v = await victim
  t.true(performance.now() - t0 < 500, 'rejected at once, not when the job ends')
  t.false(v.ok)
  t.is(v.error.name, 'AbortError')
  for (const [i, o] of (await Promise.all(others)).entries()) {
    t.true(o.ok, `keep ${i}`)
    t.true(claudeText(o.value).includes(`keep ${i}`))
  }
})

test('requestsByModel() says where each model’s requests are, and stats() counts a job’s record errors by name', async (t) => {
  // One job at a time: the first (held InProgress by the slow marker) runs while the second batch
  // waits for its slot. maxAttempts 1: a record error ends its request.
  const { emu } = await startEmu(t, { slowJobSeconds: 3 })
  const { client } = makeClient(t, emu, {
    batch: { batchTimeout: 0.05, minBatchSize: 100, maxConcurrentJobs: 1, maxAttempts: 1 },
  })
  t.deepEqual(await client.requestsByModel(), [], 'nothing before the first request')
  const bodies = ['hold [[job:slow]]', 'bad one [[error:400]]', 'bad two [[error:400]]', 'late [[error:408]]', 'fine']
  const first = bodies.map((b) => settle(client.send(claudeCommand(b))))
  await waitFor('the first job to run', () => client.stats().jobs.some((j) => j.status === 'InProgress'))
  const second = Array.from({ length: 3 }, (_, i) => settle(client.send(claudeCommand(`second ${i}`))))
  await client.flush()
  await waitFor('the second batch to wait for its slot', async () => (await client.requestsByModel())[0]?.queued === 3)
  const during = await client.requestsByModel()
  t.deepEqual(during, [{ modelId: CLAUDE, queued: 3, inJobs: 5, onDemand: 0, inGroup: 0, padded: 95 }])

  const settled = await Promise.all(first)
  t.deepEqual(
    settled.map((s) => (s.ok ? 'ok' : s.error.name)),
    ['ok', 'ValidationException', 'ValidationException', 'ModelTimeoutException', 'ok'],
  )
  const job = client.stats().jobs[0]
  t.is(job.errorRecordCount, 3)
  t.deepEqual(job.recordErrors, [
    { name: 'ValidationException', count: 2 },
    { name: 'ModelTimeoutException', count: 1 },
  ])
  t.true((await Promise.all(second)).every((s) => s.ok))
  await waitFor('the second job to end', () => client.stats().jobs.length === 2 && client.stats().inFlight === 0)
  t.deepEqual(await client.requestsByModel(), [
    { modelId: CLAUDE, queued: 0, inJobs: 0, onDemand: 0, inGroup: 0, padded: 95 + 97 },
  ])
  t.deepEqual(client.stats().jobs[1].recordErrors, [], 'a job without record errors')
})

test('requestsByModel() counts the requests in on-demand calls', async (t) => {
  const { emu } = await startEmu(t, { runtimeLatencyMs: 1500 })
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, minBatchSize: 100, belowMinimum: 'direct' } })
  const sent = Array.from({ length: 2 }, (_, i) => settle(client.send(claudeCommand(`direct ${i}`))))
  await client.flush()
  const during = await waitFor('the calls to start', async () => {
    const [m] = await client.requestsByModel()
    return m?.onDemand === 2 && m
  })
  t.like(during, { modelId: CLAUDE, queued: 0, inJobs: 0, onDemand: 2, padded: 0 })
  t.true((await Promise.all(sent)).every((s) => s.ok))
  t.deepEqual(await client.requestsByModel(), [], 'a model with nothing in hand and no fillers is not listed')
  t.is(client.stats().sentDirect, 2)
})
