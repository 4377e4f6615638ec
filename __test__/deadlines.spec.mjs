// Per-call deadlines (issue 20): a request whose job has not answered by `deadline -
// batch.fallbackMargin` is sent on-demand (Flex where the model offers it, else standard), its
// caller gets that answer, and the job's later answer is dropped; a deadline already too close at
// send goes on-demand at once. Against the emulator: jobs held InProgress with its `[[job:slow]]`
// marker, its Flex tier and throttling knob, its log of on-demand calls; the package's client,
// and the AWS SDK's own client through `serve` with the X-Bedrock-Batch-Deadline header.

import { join } from 'node:path'
import { BedrockRuntimeClient, InvokeModelCommand as SdkInvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'

import {
  CLAUDE,
  claudeBody,
  claudeText,
  InvokeModelCommand,
  listJobs,
  makeClient,
  novaBody,
  novaText,
  PG_URL,
  pgTest,
  runtimeRequests,
  settle,
  startEmu,
  startServe,
  tempDir,
  unique,
  waitFor,
} from './helpers.mjs'

const NOVA_PRO = 'amazon.nova-pro-v1:0'

const invoke = (modelId, text) =>
  new InvokeModelCommand({
    modelId,
    contentType: 'application/json',
    body: JSON.stringify(modelId === CLAUDE ? claudeBody(text) : novaBody(text)),
  })

/** Sends and notes when the answer came. */
async function timed(promise) {
  const out = await promise
  return { out, at: Date.now() }
}

const onDemand = async (emu) =>
  (await runtimeRequests(emu)).filter((r) => r.operation === 'invoke' || r.operation === 'converse')

test('jobs held InProgress: every caller is answered by its deadline, a Flex model on Flex and Claude on standard', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { fallbackMargin: 2 } })
  const deadline = Date.now() + 4000
  const calls = [
    ...[1, 2, 3].map((i) => timed(client.send(invoke(NOVA_PRO, `nova ${i} [[job:slow]]`), { deadline }))),
    ...[1, 2, 3].map((i) =>
      timed(client.send(invoke(CLAUDE, `claude ${i} [[job:slow]]`), { deadline: new Date(deadline) })),
    ),
  ]
  const answers = await Promise.all(calls)
  for (const { at } of answers) t.true(at <= deadline, `answered ${at - deadline} ms after the deadline`)
  t.deepEqual(
    answers.map(({ out }) => out.serviceTier ?? 'standard'),
    ['flex', 'flex', 'flex', 'standard', 'standard', 'standard'],
  )
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 2, 'each model had its job')
  for (const j of jobs) t.is(j.status, 'InProgress', 'the jobs were still running')
  const seen = await onDemand(emu)
  t.is(seen.length, 6)
  const s = client.stats()
  t.is(s.deadlineFallbacks, 6)
  t.like(s.tiers, { flex: { requests: 3 }, standard: { requests: 3 }, batch: { requests: 0 } })
})

test('Flex throttled: the fallbacks still arrive by their deadline, on standard', async (t) => {
  const { emu } = await startEmu(t, { flex: { throttled: true } })
  // Falls back 2 s after the send; Flex may throttle it for half the margin (2 s), then standard.
  const { client } = makeClient(t, emu, { batch: { fallbackMargin: 4 } })
  const deadline = Date.now() + 6000
  const answers = await Promise.all(
    [1, 2].map((i) => timed(client.send(invoke(NOVA_PRO, `nova ${i} [[job:slow]]`), { deadline }))),
  )
  for (const { out, at } of answers) {
    t.true(at <= deadline, `answered ${at - deadline} ms after the deadline`)
    t.is(out.serviceTier, undefined, 'on standard')
  }
  const tiers = (await onDemand(emu)).map((r) => r.serviceTier ?? 'standard')
  t.true(tiers.includes('flex'), 'Flex was tried first')
  t.is(tiers.filter((x) => x === 'standard').length, 2)
  t.is(client.stats().deadlineFallbacks, 2)
})

test('deadlines far away: nothing falls back, the job answers', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { fallbackMargin: 1 } })
  const deadline = Date.now() + 3_600_000
  const outs = await Promise.all([1, 2, 3].map((i) => client.send(invoke(NOVA_PRO, `q ${i}`), { deadline })))
  for (const out of outs) t.is(out.serviceTier, undefined)
  t.is((await listJobs(bedrock)).length, 1)
  t.deepEqual(await onDemand(emu), [])
  t.like(client.stats(), { deadlineFallbacks: 0, tiers: { batch: { requests: 3 } } })
})

test('a deadline too close for a job at send goes on-demand at once: no job', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 30 } })
  // The default margin is 60 s: a deadline 10 s away is past its fallback moment already.
  const out = await client.send(invoke(CLAUDE, 'urgent'), { deadline: Date.now() + 10_000 })
  t.true(JSON.parse(new TextDecoder().decode(out.body)).content[0].text.length > 0)
  t.deepEqual(
    (await onDemand(emu)).map((r) => r.modelId),
    [CLAUDE],
  )
  await client.flush()
  t.deepEqual(await listJobs(bedrock), [], 'no job')
  t.like(client.stats(), { deadlineFallbacks: 1, sentDirect: 1 })
})

test('batch.deadline gives each send a deadline; a queued request leaves its queue when it comes', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  // A batch timeout far beyond the deadline: the requests are still queued when it comes.
  const { client } = makeClient(t, emu, { batch: { deadline: 2, fallbackMargin: 1, batchTimeout: 60 } })
  const sent = Date.now()
  const answers = await Promise.all([1, 2].map((i) => timed(client.send(invoke(CLAUDE, `q ${i}`)))))
  for (const { at } of answers) t.true(at - sent <= 2000, `answered after ${at - sent} ms`)
  t.is((await onDemand(emu)).length, 2)
  await client.flush()
  t.deepEqual(await listJobs(bedrock), [], 'they left the queue: nothing was left to batch')
  t.is(client.stats().deadlineFallbacks, 2)
})

test('a deadline that is not a time is a ValidationException, and others in flight are not disturbed', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu)
  const good = client.send(invoke(CLAUDE, 'fine'))
  for (const deadline of ['soon', Number.NaN, -5, {}]) {
    const e = await t.throwsAsync(() => client.send(invoke(CLAUDE, 'bad'), { deadline }))
    t.is(e.name, 'ValidationException')
    t.regex(e.message, /deadline/)
  }
  t.truthy(await good)
})

test('serve: X-Bedrock-Batch-Deadline on a call from the AWS SDK sends it on-demand before its deadline', async (t) => {
  const { emu } = await startEmu(t)
  const server = await startServe(t, emu, { batch: { batchTimeout: 0.2 } })
  const runtime = new BedrockRuntimeClient({
    region: emu.region,
    endpoint: server.url,
    credentials: { accessKeyId: 'test-dummy-access-key', secretAccessKey: 'test-dummy-secret-key' },
    maxAttempts: 1,
  })
  t.teardown(() => runtime.destroy())
  // The default margin is 60 s: a deadline 61.5 s away falls back 1.5 s after the call.
  const deadline = new Date(Date.now() + 61_500).toISOString()
  runtime.middlewareStack.add(
    (next) => (args) => {
      args.request.headers['x-bedrock-batch-deadline'] = deadline
      return next(args)
    },
    { step: 'build', name: 'deadlineHeader' },
  )
  const out = await runtime.send(
    new SdkInvokeModelCommand({
      modelId: CLAUDE,
      contentType: 'application/json',
      body: JSON.stringify(claudeBody('held [[job:slow]]')),
    }),
  )
  t.true(JSON.parse(new TextDecoder().decode(out.body)).content[0].text.length > 0)
  t.deepEqual(
    (await onDemand(emu)).map((r) => r.modelId),
    [CLAUDE],
    'answered by an on-demand call',
  )
  const stats = await (await fetch(`${server.url}/_bridge/stats`)).json()
  t.is(stats.deadlineFallbacks, 1)
  // A header that is not a time: a 400 naming it.
  runtime.middlewareStack.remove('deadlineHeader')
  runtime.middlewareStack.add(
    (next) => (args) => {
      args.request.headers['x-bedrock-batch-deadline'] = 'tomorrow'
      return next(args)
    },
    { step: 'build', name: 'badDeadline' },
  )
  const e = await t.throwsAsync(() =>
    runtime.send(new SdkInvokeModelCommand({ modelId: CLAUDE, body: JSON.stringify(claudeBody('x')) })),
  )
  t.is(e.name, 'ValidationException')
  t.regex(e.message, /X-Bedrock-Batch-Deadline/)
})

test('deadlines survive a restart with the journal: the next process sends the held requests on-demand in time, and a send of their keys resolves from those answers', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const journal = { path: join(tempDir(t), 'journal.db') }
  const options = { journal, batch: { fallbackMargin: 2 } }
  const first = makeClient(t, emu, options).client
  const deadline = Date.now() + 12_000
  const sends = [1, 2, 3].map((i) =>
    settle(first.send(invoke(CLAUDE, `held ${i} [[job:slow]]`), { deadline, idempotencyKey: `row-${i}` })),
  )
  await waitFor('the job to run', async () => (await listJobs(bedrock)).some((j) => j.status === 'InProgress'))
  // The process goes away; its job and the requests' deadlines stay in the journal.
  first.destroy()
  for (const s of await Promise.all(sends)) t.false(s.ok, 'the first process answered nothing')
  t.deepEqual(await onDemand(emu), [], 'nothing went on-demand before the restart')

  // destroy() returns at once; the journal's lock is released when the first engine has stopped.
  const second = await waitFor('the journal to be released by the first client', () => {
    try {
      return makeClient(t, emu, options).client
    } catch (e) {
      if (e.name === 'JournalLockedException') return false
      throw e
    }
  })
  // Nobody asks this process for them: it sends them on-demand because their deadline comes.
  await waitFor('the deadline fallbacks', async () => (await onDemand(emu)).length === 3, { timeoutMs: 20_000 })
  t.true(Date.now() <= deadline, `on-demand ${Date.now() - deadline} ms after the deadline`)
  t.is(second.stats().deadlineFallbacks, 3)
  const outs = await Promise.all(
    [1, 2, 3].map((i) => second.send(invoke(CLAUDE, 'any body'), { idempotencyKey: `row-${i}` })),
  )
  for (const [i, out] of outs.entries()) t.true(claudeText(out).includes(`held ${i + 1}`), claudeText(out))
  t.true(Date.now() <= deadline, `answered ${Date.now() - deadline} ms after the deadline`)
  t.is((await onDemand(emu)).length, 3, 'the keys resolved from the stored answers: no call more')
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'no new job')
  t.is(jobs[0].status, 'InProgress', 'the job still runs')
})

pgTest('in a group, the leader applies the deadlines of the requests another process queued', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const store = { url: PG_URL, group: unique('grp-deadline'), electionInterval: 0.2 }
  const options = { store, batch: { fallbackMargin: 2 } }
  const leader = makeClient(t, emu, options).client
  await waitFor('a leader', () => leader.stats().leader === true)
  const member = makeClient(t, emu, options).client
  await waitFor('a member', () => member.stats().leader === false)
  const deadline = Date.now() + 8000
  const answers = await Promise.all(
    [1, 2, 3].map((i) => timed(member.send(invoke(NOVA_PRO, `member ${i} [[job:slow]]`), { deadline }))),
  )
  answers.forEach(({ out, at }, i) => {
    t.true(at <= deadline, `answered ${at - deadline} ms after the deadline`)
    t.true(novaText(out).includes(`member ${i + 1}`), novaText(out))
    t.is(out.serviceTier, 'flex', 'on Flex: Nova Pro offers it')
  })
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, "the leader's job")
  t.is(jobs[0].status, 'InProgress', 'the job still runs')
  t.deepEqual(
    (await onDemand(emu)).map((r) => r.serviceTier),
    ['flex', 'flex', 'flex'],
    'three on-demand calls, on Flex',
  )
  // The leader sent them: they count in its client's stats, not twice in the member's.
  t.is(leader.stats().deadlineFallbacks, 3)
  t.is(member.stats().deadlineFallbacks, 0)
})
