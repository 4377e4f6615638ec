// Quotas from AWS (issue 20): when `minBatchSize` or `maxConcurrentJobs` is not given, the client
// reads Bedrock's batch quotas from Service Quotas (the emulator serves ListServiceQuotas with its
// own per-model minimums and job limit) and uses them per model; when the call is denied or names
// nothing for a model, the defaults apply with one warning.

import test from 'ava'

import {
  BatchInferenceClient,
  CLAUDE,
  claudeBody,
  InvokeModelCommand,
  listJobs,
  llamaBody,
  makeClient,
  novaBody,
  startEmu,
} from './helpers.mjs'

const NOVA_LITE = 'amazon.nova-lite-v1:0'
const LLAMA_1B = 'meta.llama3-2-1b-instruct-v1:0'

const invoke = (modelId, text) =>
  new InvokeModelCommand({
    modelId,
    contentType: 'application/json',
    body: JSON.stringify(
      modelId === CLAUDE ? claudeBody(text) : modelId.startsWith('meta.') ? llamaBody(text) : novaBody(text),
    ),
  })

/** A client that leaves minBatchSize and maxConcurrentJobs to Service Quotas, with a logger that keeps warnings. */
function quotaClient(t, emu, batch = {}) {
  const warnings = []
  const { client } = makeClient(t, emu, {
    batch: { minBatchSize: undefined, maxConcurrentJobs: undefined, ...batch },
    logger: { warn: (m) => warnings.push(String(m)) },
  })
  return { client, warnings }
}

const sendMany = (client, model, n, label = 'q') =>
  Promise.all(Array.from({ length: n }, (_, i) => client.send(invoke(model, `${label} ${i}`))))

test('a model whose minimum is 50 in Service Quotas: a 60-request batch is not padded; Claude at 100 is', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: { [NOVA_LITE]: 50 } })
  t.truthy(emu.endpoints.serviceQuotas, 'the emulator says where its Service Quotas is')
  const { client, warnings } = quotaClient(t, emu)
  await sendMany(client, NOVA_LITE, 60)
  t.is(client.stats().padded, 0, 'not padded: the minimum is 50')
  await sendMany(client, CLAUDE, 60)
  t.is(client.stats().padded, 40, "Claude's minimum is the emulator's default, 100")
  const jobs = await listJobs(bedrock)
  t.deepEqual(jobs.map((j) => j.modelId).sort(), [CLAUDE, NOVA_LITE].sort())
  t.deepEqual(warnings, [])
})

test("a model's concurrent-jobs quota holds its jobs to one at a time", async (t) => {
  const { emu, bedrock } = await startEmu(t, { maxConcurrentJobs: 1, minRecords: { [NOVA_LITE]: 50 } })
  const { client } = quotaClient(t, emu, { maxBatchSize: 60 })
  await sendMany(client, NOVA_LITE, 120)
  const jobs = (await listJobs(bedrock)).sort((a, b) => a.submitTime - b.submitTime)
  t.is(jobs.length, 2)
  t.true(jobs[1].submitTime >= jobs[0].endTime, 'the second job was created after the first ended')
  t.is(client.stats().jobs.filter((j) => j.status === 'Completed').length, 2)
})

test('what the application gives wins over Service Quotas', async (t) => {
  const { emu } = await startEmu(t, { minRecords: { [NOVA_LITE]: 50 } })
  const { client } = quotaClient(t, emu, { minBatchSize: 100 })
  await sendMany(client, NOVA_LITE, 60)
  t.is(client.stats().padded, 40)
})

test('Service Quotas denied: the defaults apply, with one warning', async (t) => {
  const { emu } = await startEmu(t, { minRecords: { [NOVA_LITE]: 50 }, serviceQuotas: { denied: true } })
  const { client, warnings } = quotaClient(t, emu)
  await sendMany(client, NOVA_LITE, 60)
  await sendMany(client, NOVA_LITE, 60, 'again')
  t.is(client.stats().padded, 80, 'padded to the default minimum of 100, twice')
  t.is(warnings.length, 1, warnings.join('\n'))
  t.regex(warnings[0], /Service Quotas \(AccessDeniedException/)
  t.regex(warnings[0], /minBatchSize 100 and maxConcurrentJobs 20/)
})

test('a model the quotas do not name: the defaults, with one warning naming it', async (t) => {
  const { emu } = await startEmu(t)
  const { client, warnings } = quotaClient(t, emu)
  await sendMany(client, LLAMA_1B, 3)
  await sendMany(client, LLAMA_1B, 3, 'again')
  t.is(client.stats().padded, 194)
  t.is(warnings.length, 1, warnings.join('\n'))
  t.true(warnings[0].includes(LLAMA_1B))
})

test('with a control plane of its own and no Service Quotas endpoint, the quotas are not read', async (t) => {
  const { emu } = await startEmu(t, { minRecords: { [NOVA_LITE]: 50 }, serviceQuotas: { denied: true } })
  const { serviceQuotas, ...endpoints } = emu.endpoints
  t.truthy(serviceQuotas)
  const warnings = []
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints,
    logger: { warn: (m) => warnings.push(String(m)) },
    batch: {
      s3InputUri: `s3://${emu.bucket}/own/in/`,
      s3OutputUri: `s3://${emu.bucket}/own/out/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchInferenceRole',
      batchTimeout: 0.2,
      pollInterval: 0.05,
    },
  })
  t.teardown(() => client.destroy())
  await sendMany(client, NOVA_LITE, 60)
  t.is(client.stats().padded, 40, 'the default minimum')
  t.deepEqual(warnings, [], 'no call, so no denial to warn of')
})
