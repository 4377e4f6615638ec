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
