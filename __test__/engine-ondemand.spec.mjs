// End-to-end tests of the requests batch inference cannot honour (issue 3, "Batching"): a
// request with trace enabled or a guardrail goes on-demand, is counted in stats, and never waits
// for a batch. Kept apart from engine-batching.spec.mjs: a crash of the addon on this path must not
// take the other batching tests down with it.

import test from 'ava'

import { claudeCommand, claudeText, emulatorInfo, listJobs, makeClient, runtimeRequests, startEmu } from './helpers.mjs'

test("a request with trace 'ENABLED' is sent on-demand, without waiting for a batch", async (t) => {
  const { emu, bedrock } = await startEmu(t)
  // batchTimeout 60 s and no flush: only an on-demand call can answer it in time.
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const q = 'Traced question: what is 6 * 7?'
  const out = await client.send(claudeCommand(q, { trace: 'ENABLED' }))
  t.true(claudeText(out).includes(q))
  t.is(client.stats().sentDirect, 1)
  t.deepEqual(await listJobs(bedrock), [], 'no batch job was created')
  const calls = (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke')
  t.is(calls.length, 1)
  t.is(calls[0]?.trace, 'ENABLED', 'the trace header reached the runtime')
  await client.close()
})

test('a request with a guardrailIdentifier is sent on-demand with its guardrail, without waiting for a batch', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60 } })

  const q = 'Guarded question: what is 9 * 9?'
  const out = await client.send(claudeCommand(q, { guardrailIdentifier: 'abc123', guardrailVersion: '1' }))
  t.true(claudeText(out).includes(q))
  t.is(client.stats().sentDirect, 1)
  t.deepEqual(await listJobs(bedrock), [], 'no batch job was created')
  const calls = (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke')
  t.is(calls.length, 1)
  t.is(calls[0]?.guardrailIdentifier, 'abc123')
  t.is(calls[0]?.guardrailVersion, '1')
  await client.close()
})

test('in batch mode, direct.maxConcurrency bounds the requests sent on-demand', async (t) => {
  // Each runtime call takes 300 ms at the emulator, which counts the calls it answers at once.
  const { emu, bedrock } = await startEmu(t, { runtimeLatencyMs: 300 })
  const { client } = makeClient(t, emu, { direct: { maxConcurrency: 2 }, batch: { batchTimeout: 60 } })
  const outs = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      client.send(claudeCommand(`guarded ${i}`, { guardrailIdentifier: 'gr1', guardrailVersion: '1' })),
    ),
  )
  for (const [i, o] of outs.entries()) t.true(claudeText(o).includes(`guarded ${i}`))
  t.is(client.stats().sentDirect, 8)
  t.deepEqual(await listJobs(bedrock), [])
  const stats = await emulatorInfo(emu, 'runtime-stats')
  t.true(stats.peak >= 1 && stats.peak <= 2, `at most 2 on-demand calls at once, saw ${stats.peak}`)
  await client.close()
})

test('a modelId that breaks the model-id pattern rejects at send() with ValidationException and no job is created', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.05, minBatchSize: 1 } })
  for (const modelId of ['model with spaces', '../../etc/passwd', 'anthropic.claude/../x']) {
    const err = await client.send(claudeCommand('bad model', { modelId })).catch((e) => e)
    t.is(err.name, 'ValidationException', modelId)
    t.regex(
      err.message,
      /at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern/,
      modelId,
    )
    t.is(err.$metadata.httpStatusCode, 400)
  }
  const ok = await client.send(claudeCommand('good model'))
  t.true(claudeText(ok).includes('good model'))
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'only the good request made a job')
  t.is(client.stats().jobs[0].totalRecordCount, 1)
})
