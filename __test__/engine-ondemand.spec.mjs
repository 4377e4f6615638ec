// End-to-end tests of the requests batch inference cannot honour (issue 3, "Batching"): a
// request with trace enabled or a guardrail goes on-demand, is counted in stats, and never waits
// for a batch. Kept apart from engine-batching.spec.mjs: a crash of the addon on this path must not
// take the other batching tests down with it.

import test from 'ava'

import { claudeCommand, claudeText, listJobs, makeClient, runtimeRequests, startEmu } from './engine-helpers.mjs'

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
  const out = await client.send(claudeCommand(q, { guardrailIdentifier: 'gr-abc123', guardrailVersion: '1' }))
  t.true(claudeText(out).includes(q))
  t.is(client.stats().sentDirect, 1)
  t.deepEqual(await listJobs(bedrock), [], 'no batch job was created')
  const calls = (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke')
  t.is(calls.length, 1)
  t.is(calls[0]?.guardrailIdentifier, 'gr-abc123')
  t.is(calls[0]?.guardrailVersion, '1')
  await client.close()
})
