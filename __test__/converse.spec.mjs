// ConverseCommand through the package (issue 12): in batch mode as Converse-type jobs, on-demand
// in direct mode; the answer has the SDK's ConverseCommandOutput shape, compared with what the real
// SDK gets from the emulator's runtime for the same request. Through the plugin, batchFetch and
// serve (and the client): the door suite, doors.spec.mjs.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, getJob, inputRecords, listJobs, makeClient, NOVA, settle, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bridge = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

/** A Converse request for one question (a plain object, as both SDK's and our commands take it). */
function ask(text, extra = {}) {
  return {
    modelId: CLAUDE,
    messages: [{ role: 'user', content: [{ text }] }],
    inferenceConfig: { maxTokens: 100 },
    ...extra,
  }
}

/** What must match the SDK: everything but the request id and the latency the runtime measured. */
function comparable(out) {
  const { $metadata, metrics, ...rest } = out
  return { ...rest, metricKeys: Object.keys(metrics ?? {}), metadataKeys: Object.keys($metadata) }
}

test("batch mode: our ConverseCommand and the SDK's give the answer the SDK gets on-demand, key for key", async (t) => {
  const { emu, runtime, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const questions = Array.from({ length: 6 }, (_, i) => `Converse question ${i}: what is ${i} + 2?`)
  const outs = await Promise.all(
    questions.map((q, i) =>
      client.send(i % 2 === 0 ? new sdk.ConverseCommand(ask(q)) : new bridge.ConverseCommand(ask(q))),
    ),
  )
  for (const [i, out] of outs.entries()) {
    const real = await runtime.send(new sdk.ConverseCommand(ask(questions[i])))
    t.deepEqual(Object.keys(out), Object.keys(real), `question ${i}: the same keys in the same order`)
    t.deepEqual(comparable(out), comparable(real), `question ${i}`)
    t.regex(out.$metadata.requestId, /model-invocation-job\/[a-z0-9]{12}#R\d{10}$/)
    t.is(out.$metadata.httpStatusCode, 200)
  }
  const jobs = await listJobs(bedrock)
  t.is(jobs.length, 1, 'one Converse-type job')
  const job = await getJob(bedrock, jobs[0].jobArn)
  t.is(job.modelInvocationType, 'Converse')
})

test('a Converse and an InvokeModel request for one model run in two jobs, each of its own invocation type', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const { client, inputPrefix } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const [c, i] = await Promise.all([
    client.send(new bridge.ConverseCommand(ask('as Converse'))),
    client.send(
      new bridge.InvokeModelCommand({
        modelId: CLAUDE,
        body: JSON.stringify({
          anthropic_version: 'bedrock-2023-05-31',
          max_tokens: 50,
          messages: [{ role: 'user', content: 'as InvokeModel' }],
        }),
      }),
    ),
  ])
  t.true(c.output.message.content[0].text.includes('as Converse'))
  t.true(JSON.parse(i.body.transformToString()).content[0].text.includes('as InvokeModel'))
  const jobs = await Promise.all((await listJobs(bedrock)).map((j) => getJob(bedrock, j.jobArn)))
  t.deepEqual(jobs.map((j) => j.modelInvocationType ?? 'InvokeModel').sort(), ['Converse', 'InvokeModel'])
  // The Converse record is the request as the SDK puts it on the wire: no modelId, nothing undefined.
  const records = await inputRecords(s3, emu.bucket, inputPrefix)
  const conv = records.find((r) => JSON.stringify(r.modelInput).includes('as Converse'))
  t.deepEqual(Object.keys(conv.modelInput), ['messages', 'inferenceConfig'])
  t.deepEqual(conv.modelInput.messages, [{ role: 'user', content: [{ text: 'as Converse' }] }])
})

test('bytes go as base64 in the record, tier and log members are left out, and guardrails go on-demand', async (t) => {
  const { emu, runtime, s3 } = await startEmu(t)
  const { client, inputPrefix } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const png = Uint8Array.from([137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13])
  const withImage = ask('describe the image', {
    messages: [
      { role: 'user', content: [{ text: 'describe the image' }, { image: { format: 'png', source: { bytes: png } } }] },
    ],
    performanceConfig: { latency: 'optimized' },
    serviceTier: { type: 'flex' },
    requestMetadata: { team: 'eval' },
    system: [{ text: 'You are terse.' }],
    undefinedMember: undefined,
  })
  const guarded = ask('guarded question', { guardrailConfig: { guardrailIdentifier: 'abc123', guardrailVersion: '1' } })
  const [a, g] = await Promise.all([
    client.send(new bridge.ConverseCommand(withImage)),
    client.send(new bridge.ConverseCommand(guarded)),
  ])
  t.true(a.output.message.content[0].text.length > 0)
  t.true(g.output.message.content[0].text.includes('guarded question'))
  t.is(client.stats().sentDirect, 1, 'the guardrail request went on-demand')
  const calls = await (await fetch(`${emu.endpoints.bedrock}/_emulator/runtime-requests`)).json()
  t.true(
    calls.some((c) => c.operation === 'converse'),
    'the emulator saw an on-demand Converse call',
  )
  const records = await inputRecords(s3, emu.bucket, inputPrefix)
  const rec = records.find((r) => JSON.stringify(r.modelInput).includes('describe the image'))
  t.deepEqual(
    Object.keys(rec.modelInput),
    ['messages', 'system', 'inferenceConfig'],
    'no tier, log or undefined members',
  )
  t.is(rec.modelInput.messages[0].content[1].image.source.bytes, Buffer.from(png).toString('base64'))
  // The same image through the SDK on-demand gets the same answer (on standard: Claude has no Flex tier).
  const real = await runtime.send(
    new sdk.ConverseCommand({ ...withImage, serviceTier: undefined, undefinedMember: undefined }),
  )
  t.deepEqual(a.output, real.output)
})

test("a Converse-type job with record faults rejects those records with the SDK's exceptions, and the others resolve", async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1, maxAttempts: 1 } })
  const cases = {
    good: 'a good question',
    400: 'bad [[error:400]]',
    429: 'busy [[error:429]]',
    500: 'broken [[error:500]]',
  }
  const outcomes = await Promise.all(
    Object.values(cases).map((q) => settle(client.send(new bridge.ConverseCommand(ask(q))))),
  )
  const byCase = Object.fromEntries(Object.keys(cases).map((k, i) => [k, outcomes[i]]))
  t.true(byCase.good.ok)
  for (const [code, name] of [
    ['400', 'ValidationException'],
    ['429', 'ThrottlingException'],
    ['500', 'InternalServerException'],
  ]) {
    const o = byCase[code]
    t.false(o.ok, code)
    t.is(o.error?.name, name, code)
    t.true(o.error instanceof sdk[name], `${code}: the SDK's class`)
    t.is(o.error.$metadata.httpStatusCode, Number(code))
    t.truthy(o.error.jobArn)
  }
})

test('direct mode answers ConverseCommand on-demand as the SDK does', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const client = new bridge.BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
  })
  t.teardown(() => client.destroy())
  const q = ask('direct Converse question', {
    system: [{ text: 'Be brief.' }],
    inferenceConfig: { maxTokens: 60, temperature: 0.2 },
  })
  const [ours, real] = await Promise.all([
    client.send(new sdk.ConverseCommand(q)),
    runtime.send(new sdk.ConverseCommand(q)),
  ])
  t.deepEqual(comparable(ours), comparable(real))
  t.regex(ours.$metadata.requestId, /^[0-9a-f-]{36}$/)
  const bad = await settle(client.send(new sdk.ConverseCommand(ask('[[error:429]] slow down'))))
  t.false(bad.ok)
  t.is(bad.error?.name, 'ThrottlingException')
})

test("the request shapes generated from botocore put members in the SDK's own order (its schemas, checked shape by shape)", (t) => {
  const { shapes: SHAPES } = require('../lib/converse-shapes.json')
  let compared = 0
  for (const [name, shape] of Object.entries(SHAPES)) {
    if (shape[0] !== 's') continue
    const schema = sdk[`${name}$`]
    if (!Array.isArray(schema) || !Array.isArray(schema[4])) continue
    const ours = shape[1].map(([m]) => m)
    const theirs = schema[4]
    // Members one model has and the other lacks (the two are released on their own schedules)
    // are left aside; the rest must come in the same order.
    t.deepEqual(
      ours.filter((m) => theirs.includes(m)),
      theirs.filter((m) => ours.includes(m)),
      name,
    )
    compared++
  }
  t.true(compared > 60, `${compared} structures compared`)
})

test('a Converse body is the bytes the SDK sends: required members first, unknown members dropped, string blobs as UTF-8 base64', async (t) => {
  const { converseBody } = require('../lib/converse.js')
  const input = {
    modelId: CLAUDE,
    messages: [
      {
        role: 'user',
        extra: 1,
        content: [{ image: { format: 'png', source: { bytes: 'abc' } } }, { text: 'x', bogus: 2 }],
      },
    ],
    inferenceConfig: { temperature: 0.5, maxTokens: 10 },
    toolConfig: { tools: [{ toolSpec: { name: 't', description: 'd', inputSchema: { json: { z: 1, a: 2 } } } }] },
    additionalModelRequestFields: { z: 1, a: { y: 2, b: 1 } },
  }
  const host = new sdk.BedrockRuntimeClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' },
    endpoint: 'http://127.0.0.1:9',
    maxAttempts: 1,
  })
  let sent
  host.middlewareStack.add(
    () => async (args) => {
      sent = Buffer.from(args.request.body).toString('utf8')
      throw new Error('captured')
    },
    { step: 'finalizeRequest' },
  )
  await t.throwsAsync(() => host.send(new sdk.ConverseCommand(input)), { message: 'captured' })
  t.is(converseBody(input), sent)
})

test('tool use in batch: a Nova request goes as a Nova native record and comes back as toolUse; a family without a translation goes on-demand, counted', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const toolConfig = {
    tools: [
      {
        toolSpec: {
          name: 'lookup',
          description: 'Looks a word up',
          inputSchema: { json: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] } },
        },
      },
    ],
    toolChoice: { tool: { name: 'lookup' } },
  }
  const nova = await client.send(
    new bridge.ConverseCommand({ ...ask('look up "tide"', { toolConfig }), modelId: NOVA }),
  )
  t.is(nova.stopReason, 'tool_use')
  const use = nova.output.message.content.find((c) => c.toolUse).toolUse
  t.is(use.name, 'lookup')
  t.is(typeof use.input.word, 'string')
  t.regex(nova.$metadata.requestId, /#R\d{10}$/, 'answered by a batch record')
  const jobs = await Promise.all((await listJobs(bedrock)).map((j) => getJob(bedrock, j.jobArn)))
  t.deepEqual(
    jobs.map((j) => j.modelInvocationType ?? 'InvokeModel'),
    ['InvokeModel'],
    'an InvokeModel-type job',
  )
  t.is(client.stats().sentDirect, 0)
  const llama = await client.send(
    new bridge.ConverseCommand({ ...ask('look up "wave"', { toolConfig }), modelId: 'meta.llama3-1-8b-instruct-v1:0' }),
  )
  t.is(llama.output.message.role, 'assistant')
  t.is(client.stats().sentDirect, 1, 'Llama has no native translation here: on-demand')
})
