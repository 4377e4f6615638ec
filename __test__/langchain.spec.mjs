// A real third-party library (issue 12): LangChain's ChatBedrockConverse (@langchain/aws) calls
// ConverseCommand for invoke() and ConverseStreamCommand for stream(). Through the drop-in client
// (passed as its `client`) and through the plugin on an SDK client, 200 concurrent invoke() calls
// and 50 stream() calls each get their own answer, from batch jobs (counted at the emulator), none
// on-demand.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, getJob, listJobs, makeClient, runtimeRequests, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bridge = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')
const { ChatBedrockConverse } = require('@langchain/aws')

const INVOKES = 200
const STREAMS = 50

/** The text of a LangChain message or chunk content (a string, or content blocks). */
function textOf(content) {
  if (typeof content === 'string') return content
  return content.map((b) => (typeof b === 'string' ? b : (b.text ?? ''))).join('')
}

/** Runs the workload through a ChatBedrockConverse and checks every answer is its own. */
async function workload(t, model) {
  const invokes = Array.from({ length: INVOKES }, (_, i) =>
    model.invoke(`LangChain invoke number ${i}: name a colour.`),
  )
  const streams = Array.from({ length: STREAMS }, async (_, i) => {
    let text = ''
    let chunks = 0
    for await (const chunk of await model.stream(`LangChain stream number ${i}: name a fruit.`)) {
      text += textOf(chunk.content)
      chunks++
    }
    return { text, chunks }
  })
  const [answers, streamed] = await Promise.all([Promise.all(invokes), Promise.all(streams)])
  for (const [i, a] of answers.entries()) {
    t.true(textOf(a.content).includes(`LangChain invoke number ${i}:`), `invoke ${i} got its own answer`)
    t.true(a.usage_metadata.input_tokens > 0, `invoke ${i} has usage`)
  }
  for (const [i, s] of streamed.entries()) {
    t.true(s.text.includes(`LangChain stream number ${i}:`), `stream ${i} got its own answer`)
    t.true(s.chunks > 2, `stream ${i} came in chunks`)
  }
}

async function assertBatched(t, emu, bedrock) {
  const jobs = await Promise.all((await listJobs(bedrock)).map((j) => getJob(bedrock, j.jobArn)))
  t.true(jobs.length >= 1)
  t.true(
    jobs.every((j) => j.modelInvocationType === 'Converse'),
    'Converse-type jobs only',
  )
  const records = jobs.reduce((n, j) => n + (j.totalRecordCount ?? 0), 0)
  t.true(records >= INVOKES + STREAMS, `${records} records in ${jobs.length} jobs`)
  const onDemand = (await runtimeRequests(emu)).filter((r) => r.modelId === CLAUDE)
  t.deepEqual(onDemand, [], 'no on-demand call reached the runtime')
}

test('ChatBedrockConverse with the drop-in client: 200 invoke() and 50 stream() calls, all in batch jobs', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.3, maxBatchSize: 1000 } })
  const model = new ChatBedrockConverse({
    model: CLAUDE,
    region: emu.region,
    credentials: emu.credentials,
    client,
    maxTokens: 200,
    streamIdleTimeout: 0,
  })
  await workload(t, model)
  await assertBatched(t, emu, bedrock)
  t.is(client.stats().sentDirect, 0)
})

test('ChatBedrockConverse on an SDK client with the plugin: 200 invoke() and 50 stream() calls, all in batch jobs', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const runtime = new sdk.BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.bedrockRuntime,
  })
  const prefix = `langchain-${Date.now()}`
  const plugin = bridge.batchPlugin({
    client: runtime,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatch',
      batchTimeout: 0.3,
      pollInterval: 0.05,
    },
  })
  runtime.middlewareStack.use(plugin)
  t.teardown(() => plugin.destroy())
  const model = new ChatBedrockConverse({
    model: CLAUDE,
    region: emu.region,
    credentials: emu.credentials,
    client: runtime,
    maxTokens: 200,
    streamIdleTimeout: 0,
  })
  await workload(t, model)
  await assertBatched(t, emu, bedrock)
  t.is(plugin.stats().sentDirect, 0)
})
