// Validation as AWS's service models define it (botocore's bedrock 2023-04-20 and bedrock-runtime
// 2023-09-30), through the real AWS SDK for JavaScript: every constraint the issue names is refused
// with ValidationException 400 in AWS's message form, unknown members are neither stored nor echoed,
// and fault markers only produce errors the operation's model lists.

import { CreateModelInvocationJobCommand, ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
import { ConverseCommand, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'
import { signedRequest } from './emulator-wire.mjs'
import {
  claudeBody,
  converseBody,
  errorCodeOf,
  MODELS,
  makeClients,
  makeRecords,
  ROLE_ARN,
  readJobOutput,
  rejectsWith,
  rewriteJsonBody,
  runJob,
  startEmu,
  unique,
} from './helpers.mjs'

function createInput(emu, over = {}) {
  const p = unique('val')
  return {
    jobName: 'validation-job',
    roleArn: ROLE_ARN,
    modelId: MODELS.claude,
    inputDataConfig: { s3InputDataConfig: { s3Uri: `s3://${emu.bucket}/${p}/in/records.jsonl` } },
    outputDataConfig: { s3OutputDataConfig: { s3Uri: `s3://${emu.bucket}/${p}/out/` } },
    ...over,
  }
}

/** The ValidationException of a call, checked for AWS's form; returns its message. */
async function validationMessage(t, fn) {
  const err = await rejectsWith(t, fn, 'ValidationException', 400)
  t.regex(err?.message ?? '', /^\d+ validation errors? detected: Value/, 'AWS message form')
  return err?.message ?? ''
}

// ---------------------------------------------------------------------------
// CreateModelInvocationJob

test('a model id that breaks the ModelId pattern is refused with the pattern in the message', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const message = await validationMessage(t, () =>
    bedrock.send(new CreateModelInvocationJobCommand(createInput(emu, { modelId: 'not a model!' }))),
  )
  t.true(
    message.startsWith(
      "1 validation error detected: Value 'not a model!' at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern: ",
    ),
  )
  const list = await bedrock.send(new ListModelInvocationJobsCommand({}))
  t.deepEqual(list.invocationJobSummaries ?? [], [], 'no job was created')
})

const outputWith = (emu, extra) => ({ s3OutputDataConfig: { s3Uri: `s3://${emu.bucket}/out/`, ...extra } })

const badCreates = [
  [
    'an empty KMS key id',
    (emu) => ({ outputDataConfig: outputWith(emu, { s3EncryptionKeyId: '' }) }),
    'outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId',
    /length greater than or equal to 1/,
  ],
  [
    'a KMS key id over 2048 characters',
    (emu) => ({ outputDataConfig: outputWith(emu, { s3EncryptionKeyId: `alias/${'k'.repeat(2048)}` }) }),
    'outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId',
    /length less than or equal to 2048/,
  ],
  [
    'a KMS key id that is no key, ARN or alias',
    (emu) => ({ outputDataConfig: outputWith(emu, { s3EncryptionKeyId: 'my key' }) }),
    'outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId',
    /regular expression pattern/,
  ],
  [
    'a subnet id over 32 characters',
    () => ({ vpcConfig: { subnetIds: [`subnet-${'a'.repeat(26)}`], securityGroupIds: ['sg-1'] } }),
    'vpcConfig.subnetIds.1.member',
    /length less than or equal to 32/,
  ],
  [
    'a security group id with an underscore',
    () => ({ vpcConfig: { subnetIds: ['subnet-1'], securityGroupIds: ['sg_1'] } }),
    'vpcConfig.securityGroupIds.1.member',
    /regular expression pattern: \[-0-9a-zA-Z\]\+/,
  ],
  [
    'a tag key with a character outside the allowed set',
    () => ({ tags: [{ key: 'team#1', value: 'x' }] }),
    'tags.1.member.key',
    /regular expression pattern/,
  ],
  [
    'a tag value over 256 characters',
    () => ({ tags: [{ key: 'team', value: 'v'.repeat(257) }] }),
    'tags.1.member.value',
    /length less than or equal to 256/,
  ],
  [
    'a bucket owner that is not a 12-digit account',
    (emu) => ({ outputDataConfig: outputWith(emu, { s3BucketOwner: '1234' }) }),
    'outputDataConfig.s3OutputDataConfig.s3BucketOwner',
    /\[0-9\]\{12\}/,
  ],
]

for (const [what, over, path, constraint] of badCreates) {
  test(`create with ${what} is refused naming ${path}`, async (t) => {
    const { emu, bedrock } = await startEmu(t)
    const message = await validationMessage(t, () =>
      bedrock.send(new CreateModelInvocationJobCommand(createInput(emu, over(emu)))),
    )
    t.true(message.includes(`at '${path}' failed to satisfy constraint: `), message)
    t.regex(message, constraint)
  })
}

test('a tag without a value is refused: the model requires both key and value', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  rewriteJsonBody(bedrock, (body) => {
    body.tags = [{ key: 'team' }]
  })
  const message = await validationMessage(t, () => bedrock.send(new CreateModelInvocationJobCommand(createInput(emu))))
  t.is(
    message,
    "1 validation error detected: Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not be null",
  )
})

test('several broken constraints make one clause each, counted in front and joined with "; "', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const message = await validationMessage(t, () =>
    bedrock.send(
      new CreateModelInvocationJobCommand(
        createInput(emu, { jobName: 'bad_name', timeoutDurationInHours: 12, modelInvocationType: 'Chat' }),
      ),
    ),
  )
  t.true(message.startsWith('3 validation errors detected: '), message)
  const clauses = message.slice('3 validation errors detected: '.length).split('; ')
  t.is(clauses.length, 3)
  t.true(
    clauses[0].startsWith(
      "Value 'bad_name' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern: ",
    ),
  )
  t.is(
    clauses[1],
    "Value '12' at 'timeoutDurationInHours' failed to satisfy constraint: Member must have value greater than or equal to 24",
  )
  t.is(
    clauses[2],
    "Value 'Chat' at 'modelInvocationType' failed to satisfy constraint: Member must satisfy enum value set: [InvokeModel, Converse]",
  )
})

test('unknown request members are ignored: neither stored nor echoed by Get and List', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  rewriteJsonBody(bedrock, (body) => {
    body.notAMember = 'top'
    body.inputDataConfig.s3InputDataConfig.notAMember = 'nested'
    body.outputDataConfig.s3OutputDataConfig.alsoNot = { deep: true }
  })
  const input = createInput(emu, { vpcConfig: { subnetIds: ['subnet-1'], securityGroupIds: ['sg-1'] } })
  const { jobArn } = await bedrock.send(new CreateModelInvocationJobCommand(input))
  const got = await signedRequest(emu, { path: `/model-invocation-job/${encodeURIComponent(jobArn)}` })
  t.is(got.status, 200)
  t.false(got.text.includes('notAMember') || got.text.includes('alsoNot'), got.text)
  t.deepEqual(got.json.inputDataConfig, input.inputDataConfig)
  t.deepEqual(got.json.outputDataConfig, input.outputDataConfig)
  t.deepEqual(got.json.vpcConfig, input.vpcConfig)
  const listed = await signedRequest(emu, { path: '/model-invocation-jobs' })
  t.false(listed.text.includes('notAMember') || listed.text.includes('alsoNot'), listed.text)
})

// ---------------------------------------------------------------------------
// ListModelInvocationJobs

for (const [what, nameContains, constraint] of [
  ['empty', '', /length greater than or equal to 1/],
  ['longer than 63 characters', 'n'.repeat(64), /length less than or equal to 63/],
  ['with an underscore', 'a_b', /regular expression pattern/],
]) {
  test(`list with a nameContains ${what} is refused like a job name`, async (t) => {
    const { bedrock } = await startEmu(t)
    const message = await validationMessage(t, () => bedrock.send(new ListModelInvocationJobsCommand({ nameContains })))
    t.true(message.includes("at 'nameContains' failed to satisfy constraint: "), message)
    t.regex(message, constraint)
  })
}

// ---------------------------------------------------------------------------
// InvokeModel

const invoke = (runtime, over = {}) =>
  runtime.send(
    new InvokeModelCommand({
      modelId: MODELS.claude,
      contentType: 'application/json',
      body: JSON.stringify(claudeBody('Hello')),
      ...over,
    }),
  )

/**
 * Adds headers to every request of `client` before it is signed: for members the SDK in use does
 * not know yet (`X-Amzn-Bedrock-ProjectIdentifier`, modelled in 2026).
 */
function withHeaders(client, headers) {
  client.middlewareStack.add(
    (next) => async (args) => {
      Object.assign(args.request.headers, headers)
      return next(args)
    },
    { step: 'build', priority: 'high', name: 'testExtraHeaders' },
  )
  return client
}

const badInvokes = [
  ['a model id that breaks the InvokeModelIdentifier pattern', { modelId: 'bad model#id' }, 'modelId'],
  ['a latency outside standard|optimized', { performanceConfigLatency: 'fastest' }, 'performanceConfigLatency'],
  ['a service tier outside priority|default|flex|reserved', { serviceTier: 'gold' }, 'serviceTier'],
  ['request metadata over 8,500 characters', { requestMetadata: 'm'.repeat(8501) }, 'requestMetadata'],
  ['a trace value outside the enum', { trace: 'ON' }, 'trace'],
]

for (const [what, over, member] of badInvokes) {
  test(`InvokeModel with ${what} is refused naming ${member}`, async (t) => {
    const { runtime } = await startEmu(t)
    const message = await validationMessage(t, () => invoke(runtime, over))
    t.true(message.includes(`at '${member}' failed to satisfy constraint: `), message)
  })
}

test('InvokeModel with a malformed X-Amzn-Bedrock-ProjectIdentifier is refused naming projectIdentifier', async (t) => {
  const { runtime } = await startEmu(t)
  withHeaders(runtime, { 'x-amzn-bedrock-projectidentifier': 'not a project' })
  const message = await validationMessage(t, () => invoke(runtime))
  t.true(
    message.startsWith(
      "1 validation error detected: Value 'not a project' at 'projectIdentifier' failed to satisfy constraint: ",
    ),
    message,
  )
})

test('InvokeModel does not echo sensitive values such as requestMetadata', async (t) => {
  const { runtime } = await startEmu(t)
  const message = await validationMessage(t, () => invoke(runtime, { requestMetadata: 'secret'.repeat(1500) }))
  t.is(
    message,
    "1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: Member must have length less than or equal to 8500",
  )
})

test('InvokeModel accepts the 2026 projectIdentifier header and the tiers within their enums', async (t) => {
  const { emu } = await startEmu(t)
  for (const project of ['my-project_1', 'arn:aws:bedrock:us-east-1:123456789012:project/team-a']) {
    const { runtime } = makeClients(emu)
    withHeaders(runtime, { 'x-amzn-bedrock-projectidentifier': project })
    // Claude has no Flex tier (the emulator refuses it, see tiers.spec.mjs): priority is echoed.
    const res = await invoke(runtime, { performanceConfigLatency: 'optimized', serviceTier: 'priority' })
    t.is(res.$metadata.httpStatusCode, 200)
    t.is(res.performanceConfigLatency, 'optimized')
    t.is(res.serviceTier, 'priority')
  }
  const seen = (await signedRequest(emu, { path: '/_emulator/runtime-requests' })).json
  t.deepEqual(
    seen.map((r) => r.projectIdentifier),
    ['my-project_1', 'arn:aws:bedrock:us-east-1:123456789012:project/team-a'],
    'the header reached the emulator',
  )
})

// ---------------------------------------------------------------------------
// Converse

const hello = [{ role: 'user', content: [{ text: 'Hello' }] }]

const badConverses = [
  ['a message without role', { messages: [{ content: [{ text: 'hi' }] }] }, "Value null at 'messages.1.member.role'"],
  ['a message without content', { messages: [{ role: 'user' }] }, "Value null at 'messages.1.member.content'"],
  [
    'a role outside the enum',
    { messages: [{ role: 'robot', content: [{ text: 'hi' }] }] },
    "Value 'robot' at 'messages.1.member.role'",
  ],
  [
    'an empty content block',
    { messages: [{ role: 'user', content: [{}] }] },
    "at 'messages.1.member.content.1.member' failed to satisfy constraint: Member must have exactly one member set",
  ],
  [
    'a content block with two members',
    { messages: [{ role: 'user', content: [{ text: 'a', cachePoint: { type: 'default' } }] }] },
    'exactly one member set',
  ],
  ['maxTokens 0', { messages: hello, inferenceConfig: { maxTokens: 0 } }, "Value '0' at 'inferenceConfig.maxTokens'"],
  [
    'temperature above 1',
    { messages: hello, inferenceConfig: { temperature: 1.5 } },
    "Value '1.5' at 'inferenceConfig.temperature'",
  ],
  ['topP below 0', { messages: hello, inferenceConfig: { topP: -0.5 } }, "at 'inferenceConfig.topP'"],
  [
    '2,501 stop sequences',
    { messages: hello, inferenceConfig: { stopSequences: Array(2501).fill('x') } },
    "at 'inferenceConfig.stopSequences' failed to satisfy constraint: Member must have length less than or equal to 2500",
  ],
  [
    'an empty stop sequence',
    { messages: hello, inferenceConfig: { stopSequences: [''] } },
    "at 'inferenceConfig.stopSequences.1.member'",
  ],
  [
    'a latency outside the enum',
    { messages: hello, performanceConfig: { latency: 'fastest' } },
    "at 'performanceConfig.latency'",
  ],
  ['a service tier outside the enum', { messages: hello, serviceTier: { type: 'gold' } }, "at 'serviceTier.type'"],
  [
    'a malformed projectIdentifier',
    { messages: hello, projectIdentifier: 'a b' },
    "Value 'a b' at 'projectIdentifier'",
  ],
]

for (const [what, body, expected] of badConverses) {
  test(`Converse with ${what} is refused`, async (t) => {
    const { runtime } = await startEmu(t)
    // The body is sent as given, past the SDK's own serializer of unions.
    rewriteJsonBody(runtime, (b) => {
      for (const k of Object.keys(b)) delete b[k]
      Object.assign(b, body)
    })
    const message = await validationMessage(t, () =>
      runtime.send(new ConverseCommand({ modelId: MODELS.claude, messages: hello })),
    )
    t.true(message.includes(expected), message)
  })
}

test('Converse accepts projectIdentifier, echoes the tiers and reports cache use with cacheDetails', async (t) => {
  const { runtime } = await startEmu(t)
  // The SDK in use predates projectIdentifier: it is added to the body it sends.
  rewriteJsonBody(runtime, (b) => {
    b.projectIdentifier = 'my-project'
  })
  const res = await runtime.send(
    new ConverseCommand({
      modelId: MODELS.claude,
      system: [{ text: 'You are terse.' }, { cachePoint: { type: 'default', ttl: '1h' } }],
      messages: hello,
      performanceConfig: { latency: 'optimized' },
      serviceTier: { type: 'priority' },
    }),
  )
  t.is(res.performanceConfig?.latency, 'optimized')
  t.is(res.serviceTier?.type, 'priority')
  t.true(res.usage.cacheWriteInputTokens > 0)
  t.deepEqual(res.usage.cacheDetails, [{ ttl: '1h', inputTokens: res.usage.cacheWriteInputTokens }])
})

test('a Converse-type job answers records that break the Converse model or ask for tools with a 400 error line', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100, { bodyOf: converseBody, promptOf: (i) => `Converse record ${i}` })
  records[3].modelInput.inferenceConfig = { maxTokens: 0 }
  records[4].modelInput.toolConfig = {
    tools: [{ toolSpec: { name: 'lookup', inputSchema: { json: { type: 'object' } } } }],
  }
  const { job, jobId, outputPrefix } = await runJob(ctx, records, {
    modelId: MODELS.nova,
    modelInvocationType: 'Converse',
  })
  t.is(job.status, 'Completed')
  t.is(job.errorRecordCount, 2)
  t.is(job.successRecordCount, 98)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  const byId = new Map(out.records.map((l) => [l.recordId, l]))
  const bad = byId.get(records[3].recordId)
  t.is(errorCodeOf(bad), 400)
  t.true(
    bad.error.errorMessage.includes("Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint"),
    bad.error.errorMessage,
  )
  const tools = byId.get(records[4].recordId)
  t.is(errorCodeOf(tools), 400)
  t.regex(tools.error.errorMessage, /toolConfig/)
  t.truthy(byId.get(records[5].recordId).modelOutput, 'the other records are answered')
})

// ---------------------------------------------------------------------------
// Fault markers: only the errors the operation's model lists

const markerCases = [
  ['InvokeModel', 409, 'ValidationException', 400],
  ['InvokeModel', 401, 'ValidationException', 400],
  ['InvokeModel', 502, 'InternalServerException', 500],
  ['InvokeModel', 503, 'ServiceUnavailableException', 503],
  ['InvokeModel', 424, 'ModelErrorException', 424],
  ['Converse', 409, 'ValidationException', 400],
  ['Converse', 504, 'InternalServerException', 500],
  ['Converse', 429, 'ThrottlingException', 429],
]

for (const [op, code, name, status] of markerCases) {
  test(`${op} with [[error:${code}]] answers ${status} ${name}, as its model allows`, async (t) => {
    const { runtime } = await startEmu(t)
    const text = `Please fail [[error:${code}]]`
    const call =
      op === 'InvokeModel'
        ? () => invoke(runtime, { body: JSON.stringify(claudeBody(text)) })
        : () =>
            runtime.send(
              new ConverseCommand({ modelId: MODELS.claude, messages: [{ role: 'user', content: [{ text }] }] }),
            )
    await rejectsWith(t, call, name, status)
  })
}
