// AWS Service Quotas on the emulator (AWS JSON 1.1, signed for `servicequotas`): ListServiceQuotas
// and GetServiceQuota with ServiceCode `bedrock` report the emulator's own limits under Bedrock's
// quota names, four per model, through the real @aws-sdk/client-service-quotas.

import {
  GetServiceQuotaCommand,
  ListServiceQuotasCommand,
  paginateListServiceQuotas,
  ServiceQuotasClient,
} from '@aws-sdk/client-service-quotas'
import test from 'ava'
import { errorType, signedRequest } from './emulator-wire.mjs'
import { CLAUDE, rejectsWith, startEmu } from './helpers.mjs'

/** The models the emulator reports by default, with the names their quotas use. */
const MODEL_NAMES = {
  'anthropic.claude-3-haiku-20240307-v1:0': 'Claude 3 Haiku',
  'anthropic.claude-3-5-haiku-20241022-v1:0': 'Claude 3.5 Haiku',
  'anthropic.claude-3-5-sonnet-20241022-v2:0': 'Claude 3.5 Sonnet v2',
  'anthropic.claude-sonnet-4-20250514-v1:0': 'Claude Sonnet 4',
  'amazon.nova-micro-v1:0': 'Nova Micro',
  'amazon.nova-lite-v1:0': 'Nova Lite',
  'amazon.nova-pro-v1:0': 'Nova Pro',
  'amazon.titan-embed-text-v2:0': 'Titan Text Embeddings V2',
  'meta.llama3-1-8b-instruct-v1:0': 'Llama 3.1 8B Instruct',
  'meta.llama4-scout-17b-instruct-v1:0': 'Llama 4 Scout',
  'mistral.mistral-large-2407-v1:0': 'Mistral Large 2 (24.07)',
  'openai.gpt-oss-120b-1:0': 'gpt-oss-120b',
}

/** The four quota names of a model, in list order. */
function quotaNames(name) {
  return [
    `Minimum number of records per batch inference job for ${name}`,
    `Sum of in-progress and submitted batch inference jobs using a base model for ${name}`,
    `Records per input file per batch inference job for ${name}`,
    `Records per batch inference job for ${name}`,
  ]
}

/** An emulator and a Service Quotas client for it. */
async function start(t, options = {}) {
  const { emu } = await startEmu(t, options)
  const quotas = new ServiceQuotasClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.serviceQuotas,
    maxAttempts: 1,
  })
  t.teardown(() => quotas.destroy())
  return { emu, quotas }
}

/** Every quota, read in pages of at most `pageSize`; also returns how many pages it took. */
async function listAll(t, quotas, pageSize) {
  const all = []
  let pages = 0
  const pagination = { client: quotas }
  for await (const page of paginateListServiceQuotas(pagination, { ServiceCode: 'bedrock', MaxResults: pageSize })) {
    t.true(page.Quotas.length <= pageSize, `a page of ${page.Quotas.length}`)
    all.push(...page.Quotas)
    pages++
  }
  return { all, pages }
}

test('ListServiceQuotas pages through four quotas per model, named and valued as configured', async (t) => {
  const extra = 'acme.custom-model-v1:0'
  const { emu, quotas } = await start(t, { minRecords: { [CLAUDE]: 50, [extra]: 10 }, maxConcurrentJobs: 7 })
  t.is(emu.endpoints.serviceQuotas, emu.endpoints.bedrock)
  const { all, pages } = await listAll(t, quotas, 5)
  const models = Object.keys(MODEL_NAMES).length + 1
  t.is(all.length, 4 * models)
  t.is(pages, Math.ceil((4 * models) / 5))
  t.is(new Set(all.map((q) => q.QuotaCode)).size, all.length, 'codes are distinct')

  // The table's models first, in order, then the one only minRecords names (named by its id).
  const expectedNames = [...Object.values(MODEL_NAMES), extra].flatMap(quotaNames)
  t.deepEqual(
    all.map((q) => q.QuotaName),
    expectedNames,
  )

  const byName = Object.fromEntries(all.map((q) => [q.QuotaName, q]))
  const haiku = quotaNames('Claude 3 Haiku').map((n) => byName[n])
  t.deepEqual(
    haiku.map((q) => [q.Value, q.Adjustable]),
    [
      [50, false],
      [7, true],
      [50000, true],
      [50000, true],
    ],
  )
  t.is(byName[quotaNames('Nova Lite')[0]].Value, 100, 'a model not in the map has the default minimum')
  t.is(byName[quotaNames(extra)[0]].Value, 10)
  for (const q of all) {
    t.is(q.ServiceCode, 'bedrock')
    t.is(q.ServiceName, 'Amazon Bedrock')
    t.regex(q.QuotaCode, /^L-[0-9A-F]{8}$/)
    t.is(q.QuotaArn, `arn:aws:servicequotas:${emu.region}:123456789012:bedrock/${q.QuotaCode}`)
    t.is(q.Unit, 'None')
    t.is(q.GlobalQuota, false)
    t.is(typeof q.Value, 'number')
  }

  // One page of everything, and the same codes in a second emulator: they come from the names.
  const whole = await quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock' }))
  t.is(whole.Quotas.length, 4 * models)
  t.is(whole.NextToken, undefined)
  const other = await start(t, { minRecords: 3 })
  const again = await listAll(t, other.quotas, 100)
  t.is(again.all.length, 4 * Object.keys(MODEL_NAMES).length)
  t.deepEqual(
    again.all.map((q) => q.QuotaCode),
    all.slice(0, again.all.length).map((q) => q.QuotaCode),
  )
})

test('GetServiceQuota answers a listed code; QuotaCode filters the list', async (t) => {
  const { quotas } = await start(t, { maxConcurrentJobs: 7 })
  const listed = await quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock' }))
  const concurrent = listed.Quotas.find((q) => q.QuotaName === quotaNames('Nova Pro')[1])
  const { Quota } = await quotas.send(
    new GetServiceQuotaCommand({ ServiceCode: 'bedrock', QuotaCode: concurrent.QuotaCode }),
  )
  t.deepEqual(Quota, concurrent)
  t.is(Quota.Value, 7)
  const one = await quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock', QuotaCode: Quota.QuotaCode }))
  t.deepEqual(one.Quotas, [concurrent])
})

test('an unknown code or service is NoSuchResourceException; a token not made here is InvalidPaginationTokenException', async (t) => {
  const { quotas } = await start(t)
  await rejectsWith(
    t,
    () => quotas.send(new GetServiceQuotaCommand({ ServiceCode: 'bedrock', QuotaCode: 'L-00000000' })),
    'NoSuchResourceException',
    400,
  )
  await rejectsWith(
    t,
    () => quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'ec2' })),
    'NoSuchResourceException',
    400,
  )
  const err = await rejectsWith(
    t,
    () => quotas.send(new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: 'L-00000000' })),
    'NoSuchResourceException',
    400,
  )
  t.is(err.message, 'The request failed because the specified service ec2 does not exist.', 'read from Message')
  // Base64 text, as the model's NextToken pattern wants, but not a token of the emulator's.
  await rejectsWith(
    t,
    () => quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock', NextToken: 'bm90LW91cnM=' })),
    'InvalidPaginationTokenException',
    400,
  )
})

test('constraints of the model are checked: MaxResults 0, a missing ServiceCode', async (t) => {
  const { quotas } = await start(t)
  const err = await rejectsWith(
    t,
    () => quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock', MaxResults: 0 })),
    'ValidationException',
    400,
  )
  t.is(
    err.message,
    "1 validation error detected: Value '0' at 'MaxResults' failed to satisfy constraint: Member must have value greater than or equal to 1",
  )
  await rejectsWith(
    t,
    () => quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock', MaxResults: 101 })),
    'ValidationException',
    400,
  )
  const missing = await rejectsWith(
    t,
    () => quotas.send(new GetServiceQuotaCommand({ ServiceCode: 'bedrock' })),
    'ValidationException',
    400,
  )
  t.regex(missing.message, /Value null at 'QuotaCode' failed to satisfy constraint: Member must not be null/)
})

test('serviceQuotas: { denied: true } answers both operations with AccessDeniedException', async (t) => {
  const { quotas } = await start(t, { serviceQuotas: { denied: true } })
  const err = await rejectsWith(
    t,
    () => quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock' })),
    'AccessDeniedException',
    400,
  )
  t.regex(err.message, /^User: .+ is not authorized to perform: servicequotas:ListServiceQuotas/)
  const get = await rejectsWith(
    t,
    () => quotas.send(new GetServiceQuotaCommand({ ServiceCode: 'bedrock', QuotaCode: 'L-00000000' })),
    'AccessDeniedException',
    400,
  )
  t.regex(get.message, /is not authorized to perform: servicequotas:GetServiceQuota/)
})

test('an unknown operation is UnknownOperationException 400', async (t) => {
  const { quotas } = await start(t)
  quotas.middlewareStack.add(
    (next) => async (args) => {
      args.request.headers['x-amz-target'] = 'ServiceQuotasV20190624.DeleteEverything'
      return next(args)
    },
    { step: 'build', name: 'unknownTarget' },
  )
  await rejectsWith(
    t,
    () => quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock' })),
    'UnknownOperationException',
    400,
  )
})

test('requests must be signed for servicequotas with the emulator credentials', async (t) => {
  const { emu, quotas } = await start(t)
  const target = { 'x-amz-target': 'ServiceQuotasV20190624.ListServiceQuotas' }
  const unsigned = await fetch(emu.endpoints.serviceQuotas, {
    method: 'POST',
    headers: { ...target, 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify({ ServiceCode: 'bedrock' }),
  })
  t.is(unsigned.status, 403)
  t.is(unsigned.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException')
  const body = await unsigned.json()
  t.is(body.__type, 'MissingAuthenticationTokenException')
  t.is(body.message, 'Missing Authentication Token')

  // Signed, but for Bedrock's signing name.
  const asBedrock = await signedRequest(emu, {
    method: 'POST',
    path: '/',
    headers: { ...target, 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify({ ServiceCode: 'bedrock' }),
  })
  t.is(asBedrock.status, 403)
  t.is(errorType(asBedrock), 'InvalidSignatureException')
  t.regex(asBedrock.json.message, /scoped to correct service: 'servicequotas'/)

  const stranger = new ServiceQuotasClient({
    region: emu.region,
    credentials: { accessKeyId: 'AKIDNOTTHEEMULATORS1', secretAccessKey: emu.credentials.secretAccessKey },
    endpoint: emu.endpoints.serviceQuotas,
    maxAttempts: 1,
  })
  t.teardown(() => stranger.destroy())
  await rejectsWith(
    t,
    () => stranger.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock' })),
    'UnrecognizedClientException',
    403,
  )
  const ok = await quotas.send(new ListServiceQuotasCommand({ ServiceCode: 'bedrock', MaxResults: 1 }))
  t.is(ok.$metadata.httpStatusCode, 200)
})
