// The streaming commands through the package (issue 12): ConverseStreamCommand and
// InvokeModelWithResponseStreamCommand batched by default (the record's answer replayed as the
// stream's events), on-demand as real event streams (direct mode, or `batch.streaming: 'direct'`);
// compared with what the real SDK streams from the emulator's runtime. Through the plugin,
// batchFetch and serve (and the client): the door suite, doors.spec.mjs.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, getJob, listJobs, makeClient, NOVA, settle, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bridge = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

function ask(text, extra = {}) {
  return {
    modelId: CLAUDE,
    messages: [{ role: 'user', content: [{ text }] }],
    inferenceConfig: { maxTokens: 200 },
    ...extra,
  }
}

async function collect(iterable) {
  const out = []
  for await (const e of iterable) out.push(e)
  return out
}

/** The text a ConverseStream consumer gets by concatenating the text deltas. */
function streamedText(events) {
  return events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join('')
}

/** The chunk payloads of an InvokeModelWithResponseStream answer, parsed. */
function chunkPayloads(events) {
  return events.map((e) => {
    if (!(e.chunk?.bytes instanceof Uint8Array)) throw new Error(`not a chunk: ${JSON.stringify(e)}`)
    return JSON.parse(Buffer.from(e.chunk.bytes).toString('utf8'))
  })
}

/** The text of Claude stream chunks. */
function claudeStreamText(payloads) {
  return payloads
    .filter((p) => p.type === 'content_block_delta' && p.delta?.type === 'text_delta')
    .map((p) => p.delta.text)
    .join('')
}

/** The event names in order, with a delta's kind: what must match between two streams. */
function sequence(events) {
  return events.map((e) => {
    const [k] = Object.keys(e)
    return k === 'contentBlockDelta' ? `${k}:${Object.keys(e[k].delta)[0]}` : k
  })
}

test('batch mode: ConverseStreamCommand gets the events of its record answer; the deltas concatenate to the ConverseCommand answer', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const questions = Array.from(
    { length: 4 },
    (_, i) => `Stream question ${i}: tell me about the number ${i} in a few sentences, please.`,
  )
  const [streams, plain] = await Promise.all([
    Promise.all(
      questions.map((q, i) =>
        client.send(i % 2 ? new sdk.ConverseStreamCommand(ask(q)) : new bridge.ConverseStreamCommand(ask(q))),
      ),
    ),
    Promise.all(questions.map((q) => client.send(new bridge.ConverseCommand(ask(q))))),
  ])
  for (const [i, out] of streams.entries()) {
    t.deepEqual(Object.keys(out).sort(), ['$metadata', 'stream'])
    t.regex(out.$metadata.requestId, /model-invocation-job\/[a-z0-9]{12}#R\d{10}$/)
    const events = await collect(out.stream)
    t.deepEqual(events[0], { messageStart: { role: 'assistant' } })
    t.is(streamedText(events), plain[i].output.message.content[0].text, `question ${i}: the deltas make the answer`)
    const stop = events.find((e) => e.messageStop)
    t.is(stop.messageStop.stopReason, plain[i].stopReason)
    const meta = events.at(-1).metadata
    t.deepEqual(meta.usage, plain[i].usage)
    t.true(typeof meta.metrics.latencyMs === 'number')
    await t.throwsAsync(() => collect(out.stream), { instanceOf: TypeError }, 'a stream is read once')
  }
  const jobs = await Promise.all((await listJobs(bedrock)).map((j) => getJob(bedrock, j.jobArn)))
  t.deepEqual(
    jobs.map((j) => j.modelInvocationType),
    ['Converse'],
    'stream and non-stream Converse requests share one Converse-type job',
  )
  t.is(client.stats().sentDirect, 0)
})

test('batch mode: InvokeModelWithResponseStreamCommand gets Claude stream chunks ending with the invocation metrics', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const body = JSON.stringify(claudeBody('Please write two sentences about streaming answers.'))
  const [streamed, whole] = await Promise.all([
    client.send(new sdk.InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body })),
    client.send(new bridge.InvokeModelCommand({ modelId: CLAUDE, body })),
  ])
  t.is(streamed.contentType, 'application/json')
  const payloads = chunkPayloads(await collect(streamed.body))
  const answer = JSON.parse(whole.body.transformToString())
  t.deepEqual(
    payloads.map((p) => p.type),
    [
      'message_start',
      'content_block_start',
      ...payloads.slice(2, -3).map(() => 'content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ],
  )
  t.is(claudeStreamText(payloads), answer.content[0].text)
  t.is(payloads[0].message.id, answer.id)
  t.is(payloads.at(-2).delta.stop_reason, answer.stop_reason)
  const metrics = payloads.at(-1)['amazon-bedrock-invocationMetrics']
  t.is(metrics.inputTokenCount, answer.usage.input_tokens)
  t.is(metrics.outputTokenCount, answer.usage.output_tokens)
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'the stream and the plain call share one InvokeModel-type job')
})

test('batch mode: a Nova stream request gets Nova chunks; its text is the answer', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const body = JSON.stringify({
    messages: [{ role: 'user', content: [{ text: 'A Nova stream, please.' }] }],
    inferenceConfig: { maxTokens: 100 },
  })
  const [streamed, whole] = await Promise.all([
    client.send(new bridge.InvokeModelWithResponseStreamCommand({ modelId: NOVA, body })),
    client.send(new bridge.InvokeModelCommand({ modelId: NOVA, body })),
  ])
  const payloads = chunkPayloads(await collect(streamed.body))
  const text = payloads.map((p) => p.contentBlockDelta?.delta?.text ?? '').join('')
  t.is(text, JSON.parse(whole.body.transformToString()).output.message.content[0].text)
  t.truthy(payloads.at(-1)['amazon-bedrock-invocationMetrics'])
})

test('a stream request whose record fails rejects at send() with the record error, as the SDK rejects a stream that cannot open', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const [bad, good] = await Promise.all([
    settle(client.send(new bridge.ConverseStreamCommand(ask('please fail [[error:400]] now')))),
    settle(client.send(new bridge.ConverseStreamCommand(ask('a good one in the same job')))),
  ])
  t.false(bad.ok)
  t.is(bad.error.name, 'ValidationException')
  t.true(bad.error instanceof sdk.ValidationException)
  t.true(good.ok)
  t.true(streamedText(await collect(good.value.stream)).length > 0)
})

test("batch.streaming: 'direct' sends the streaming commands on-demand (real event streams), counted in sentDirect", async (t) => {
  const { emu, runtime, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1, streaming: 'direct' } })
  t.is(client.config.batch.streaming, 'direct')
  const input = ask('An on-demand stream through the batch client.')
  const [ours, real] = await Promise.all([
    client.send(new bridge.ConverseStreamCommand(input)),
    runtime.send(new sdk.ConverseStreamCommand(input)),
  ])
  const [a, b] = await Promise.all([collect(ours.stream), collect(real.stream)])
  t.deepEqual(sequence(a), sequence(b))
  t.is(streamedText(a), streamedText(b))
  t.is(client.stats().sentDirect, 1)
  t.is((await listJobs(bedrock)).length, 0, 'no job')
})

test('batch.streaming is checked', (t) => {
  const e = t.throws(() => new bridge.BatchInferenceClient({ batch: { streaming: 'sometimes' } }))
  t.is(e.name, 'ValidationException')
  t.regex(e.message, /batch\.streaming/)
})

test('direct mode: both streaming commands stream from the runtime as the SDK streams them', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const { client } = makeClient(t, emu, { mode: 'direct' })
  const input = ask('Direct mode streaming: a few sentences about rivers, please.')
  const [ours, real] = await Promise.all([
    client.send(new sdk.ConverseStreamCommand(input)),
    runtime.send(new sdk.ConverseStreamCommand(input)),
  ])
  t.deepEqual(Object.keys(ours).sort(), Object.keys(real).sort())
  const [a, b] = await Promise.all([collect(ours.stream), collect(real.stream)])
  t.deepEqual(sequence(a), sequence(b))
  t.is(streamedText(a), streamedText(b))
  t.deepEqual(a.at(-1).metadata.usage, b.at(-1).metadata.usage)

  const body = JSON.stringify(claudeBody('Direct mode chunks, please.'))
  const [oursI, realI] = await Promise.all([
    client.send(new bridge.InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body })),
    runtime.send(new sdk.InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body })),
  ])
  t.is(oursI.contentType, realI.contentType)
  const [pa, pb] = await Promise.all([collect(oursI.body).then(chunkPayloads), collect(realI.body).then(chunkPayloads)])
  t.deepEqual(
    pa.map((p) => p.type),
    pb.map((p) => p.type),
  )
  t.is(claudeStreamText(pa), claudeStreamText(pb))
})

test('direct mode: a stream that fails part way throws the modelled exception from the iterator, as the SDK does', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const { client } = makeClient(t, emu, { mode: 'direct' })
  for (const [marker, name] of [
    ['[[stream-error:424]]', 'ModelStreamErrorException'],
    ['[[stream-error:429]]', 'ThrottlingException'],
    ['[[stream-error:500]]', 'InternalServerException'],
  ]) {
    const input = ask(`stream then break ${marker} please`)
    const readAll = (out) => collect(out.stream)
    const real = await settle(runtime.send(new sdk.ConverseStreamCommand(input)).then(readAll))
    const seen = []
    const ours = await settle(
      client.send(new bridge.ConverseStreamCommand(input)).then(async (out) => {
        for await (const e of out.stream) seen.push(e)
      }),
    )
    t.false(real.ok, `${marker}: the emulator breaks the stream`)
    t.false(ours.ok, marker)
    t.is(ours.error.name, real.error.name, marker)
    t.is(ours.error.name, name, marker)
    t.true(ours.error instanceof sdk[name], `${marker}: the SDK class`)
    t.deepEqual(seen[0], { messageStart: { role: 'assistant' } }, `${marker}: the events before the break arrive first`)
  }
  const chunks = await settle(
    client
      .send(
        new bridge.InvokeModelWithResponseStreamCommand({
          modelId: CLAUDE,
          body: JSON.stringify(claudeBody('break [[stream-error:408]] here')),
        }),
      )
      .then((o) => collect(o.body)),
  )
  t.false(chunks.ok)
  t.is(chunks.error.name, 'ModelTimeoutException')
  const early = await settle(
    client.send(new bridge.ConverseStreamCommand(ask('refused [[error:400]] before streaming'))),
  )
  t.false(early.ok, 'an error before the stream opens rejects send()')
  t.is(early.error.name, 'ValidationException')
})

test('an abort ends a stream with AbortError: before it settles, and while it is read (batched and on-demand)', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const early = new AbortController()
  const pending = settle(
    client.send(new bridge.ConverseStreamCommand(ask('aborted while queued')), { abortSignal: early.signal }),
  )
  early.abort()
  const e = await pending
  t.false(e.ok)
  t.is(e.error.name, 'AbortError')

  for (const mode of ['batch', 'direct']) {
    const c = mode === 'batch' ? client : makeClient(t, emu, { mode: 'direct' }).client
    const ac = new AbortController()
    const out = await c.send(
      new bridge.ConverseStreamCommand(ask(`Abort me while I am read (${mode}): a long answer about the sea, please.`)),
      {
        abortSignal: ac.signal,
      },
    )
    const seen = []
    const r = await settle(
      (async () => {
        for await (const ev of out.stream) {
          seen.push(ev)
          if (seen.length === 1) ac.abort()
        }
      })(),
    )
    t.false(r.ok, mode)
    t.is(r.error.name, 'AbortError', mode)
    t.is(seen.length, 1, `${mode}: no event after the abort`)
  }
})
