// CountTokens (`POST /model/{modelId}/count-tokens`) through the real @aws-sdk/client-bedrock-runtime:
// its count is the input usage the same request reports when it runs (InvokeModel and Converse on
// demand, and a Converse request batched by the engine, a tool call as a native Claude record), for
// Claude on a bare model id; other models, bad input and bad signatures get AWS's errors.

import {
  BedrockRuntimeClient,
  ConverseCommand,
  CountTokensCommand,
  InvokeModelCommand,
} from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'

import {
  CLAUDE,
  captureResponseHeaders,
  claudeBody,
  getJob,
  listJobs,
  MODELS,
  makeClient,
  rejectsWith,
  rewriteJsonBody,
  runtimeRequests,
  startEmu,
} from './helpers.mjs'

const UNSUPPORTED = "The provided model doesn't support counting tokens."
const PNG = Uint8Array.from(
  Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  ),
)
const WEATHER = {
  tools: [
    {
      toolSpec: {
        name: 'get_weather',
        description: 'The weather in a city',
        inputSchema: {
          json: {
            type: 'object',
            properties: { city: { type: 'string', enum: ['Paris', 'Oslo'] } },
            required: ['city'],
          },
        },
      },
    },
  ],
}
const user = (...content) => ({ role: 'user', content })

/** Converse inputs (without modelId): text, a system prompt, several turns, a tool call and its result, an image. */
const CASES = {
  text: { messages: [user({ text: 'Count me: what is 6 x 7?' })] },
  'a system prompt': {
    system: [{ text: 'You answer in one sentence.' }],
    messages: [user({ text: 'Name three rivers.' })],
    inferenceConfig: { maxTokens: 64, temperature: 0.2 },
  },
  'several turns': {
    messages: [
      user({ text: 'My name is Ada.' }),
      { role: 'assistant', content: [{ text: 'Nice to meet you, Ada.' }] },
      user({ text: 'What is my name?' }),
    ],
  },
  'a tool call and its result': {
    messages: [
      user({ text: 'What is the weather in Paris? [[tool:get_weather]]' }),
      {
        role: 'assistant',
        content: [{ toolUse: { toolUseId: 'tooluse_abc', name: 'get_weather', input: { city: 'Paris' } } }],
      },
      user({ toolResult: { toolUseId: 'tooluse_abc', content: [{ json: { forecast: 'sunny', celsius: 21 } }] } }),
    ],
    toolConfig: WEATHER,
  },
  'an image': {
    messages: [user({ text: 'What is in this picture?' }, { image: { format: 'png', source: { bytes: PNG } } })],
  },
}

/** CountTokens' converse input of a Converse input (what it carries of it). */
function converseInput({ messages, system, toolConfig, additionalModelRequestFields }) {
  return { converse: { messages, system, toolConfig, additionalModelRequestFields } }
}

async function count(runtime, input, modelId = CLAUDE) {
  const out = await runtime.send(new CountTokensCommand({ modelId, input }))
  return out.inputTokens
}

const encode = (body) => new TextEncoder().encode(JSON.stringify(body))

test('a converse input counts the input usage Converse reports for the request', async (t) => {
  const { runtime } = await startEmu(t)
  const counts = []
  for (const [label, input] of Object.entries(CASES)) {
    const counted = await count(runtime, converseInput(input))
    t.true(Number.isInteger(counted) && counted > 0, `${label}: ${counted}`)
    const out = await runtime.send(new ConverseCommand({ modelId: CLAUDE, ...input }))
    t.is(out.usage.inputTokens, counted, `${label}: Converse usage`)
    counts.push(counted)
  }
  t.is(new Set(counts).size, counts.length, `different requests, different counts: ${counts}`)
})

test('an invokeModel body counts the input usage InvokeModel reports, in its body and its header', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const headers = captureResponseHeaders(runtime)
  const tool = {
    tools: [{ name: 'get_weather', description: 'The weather', input_schema: { type: 'object', properties: {} } }],
  }
  for (const body of [claudeBody('Count my tokens please'), claudeBody('Weather in Oslo? [[tool]]', tool)]) {
    const counted = await count(runtime, { invokeModel: { body: encode(body) } })
    const out = await runtime.send(
      new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body: JSON.stringify(body) }),
    )
    const answer = JSON.parse(out.body.transformToString())
    t.is(answer.usage.input_tokens, counted)
    t.is(Number(headers.at(-1)['x-amzn-bedrock-input-token-count']), counted)
  }
  // Whitespace and key order are not content: a pretty-printed body counts the same.
  const body = claudeBody('Same content, other layout')
  const pretty = JSON.stringify(
    { messages: body.messages, max_tokens: 5, anthropic_version: body.anthropic_version },
    null,
    4,
  )
  t.is(
    await count(runtime, { invokeModel: { body: new TextEncoder().encode(pretty) } }),
    await count(runtime, { invokeModel: { body: encode(body) } }),
  )
  // The runtime log names the operation, as it does InvokeModel's.
  const log = await runtimeRequests(emu)
  t.is(log.filter((e) => e.operation === 'count-tokens' && e.modelId === CLAUDE).length, 4)
  t.is(log.filter((e) => e.operation === 'invoke').length, 2)
})

test('a Converse request batched by the engine reports the count, a tool call as a native Claude record too', async (t) => {
  const { emu, runtime, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.05, maxAttempts: 1 } })
  const toolCall = {
    messages: [user({ text: 'What is the weather in Oslo?' })],
    toolConfig: { ...WEATHER, toolChoice: { any: {} } },
  }
  const requests = { ...CASES, 'a forced tool call': toolCall }
  const labels = Object.keys(requests)
  const batched = await Promise.all(
    labels.map((l) => client.send(new ConverseCommand({ modelId: CLAUDE, ...requests[l] }))),
  )
  for (const [i, label] of labels.entries()) {
    const counted = await count(runtime, converseInput(requests[label]))
    t.regex(batched[i].$metadata.requestId, /#R\d{10}$/, `${label}: answered by a job`)
    t.is(batched[i].usage.inputTokens, counted, `${label}: batched usage`)
    const direct = await runtime.send(new ConverseCommand({ modelId: CLAUDE, ...requests[label] }))
    t.is(direct.usage.inputTokens, counted, `${label}: on-demand usage`)
  }
  t.is(batched.at(-1).stopReason, 'tool_use')
  t.is(client.stats().sentDirect, 0)
  const jobs = await Promise.all((await listJobs(bedrock)).map((j) => getJob(bedrock, j.jobArn)))
  t.true(
    jobs.some((j) => (j.modelInvocationType ?? 'InvokeModel') === 'InvokeModel'),
    'the tool requests ran as native records',
  )
  t.true(
    jobs.some((j) => j.modelInvocationType === 'Converse'),
    'the others as Converse records',
  )
})

test('models other than Claude on a bare model id count no tokens', async (t) => {
  const { runtime } = await startEmu(t)
  const input = converseInput(CASES.text)
  for (const modelId of [
    MODELS.nova,
    MODELS.llama,
    MODELS.claudeProfile,
    `arn:aws:bedrock:us-east-1::foundation-model/${CLAUDE}`,
  ]) {
    const err = await rejectsWith(t, () => count(runtime, input, modelId), 'ValidationException', 400)
    t.is(err.message, UNSUPPORTED, modelId)
  }
  t.true((await count(runtime, input, 'anthropic.claude-sonnet-4-20250514-v1:0')) > 0)
})

test('a body the model cannot read and input the service model forbids are ValidationExceptions', async (t) => {
  const { runtime, emu } = await startEmu(t)
  let err = await rejectsWith(
    t,
    () => count(runtime, { invokeModel: { body: new TextEncoder().encode('{not json') } }),
    'ValidationException',
    400,
  )
  t.regex(err.message, /^Malformed input request: /)
  err = await rejectsWith(
    t,
    () => count(runtime, { invokeModel: { body: encode({ messages: [{ role: 'user', content: 'hi' }] }) } }),
    'ValidationException',
    400,
  )
  t.is(
    err.message,
    'Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again.',
  )
  err = await rejectsWith(
    t,
    () => count(runtime, { converse: { messages: [{ role: 'robot', content: [{ text: 'hi' }] }] } }),
    'ValidationException',
    400,
  )
  t.is(
    err.message,
    "1 validation error detected: Value 'robot' at 'input.converse.messages.1.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant, system]",
  )
  // The input is a union: exactly one member, as the SDK would never send otherwise.
  const raw = new BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
  })
  t.teardown(() => raw.destroy())
  rewriteJsonBody(raw, (body) => {
    body.input.invokeModel = { body: Buffer.from(JSON.stringify(claudeBody('x'))).toString('base64') }
  })
  err = await rejectsWith(t, () => count(raw, converseInput(CASES.text)), 'ValidationException', 400)
  t.is(
    err.message,
    "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have exactly one member set",
  )
})

test('CountTokens is signed like every runtime call', async (t) => {
  const { emu } = await startEmu(t)
  const client = (credentials) => {
    const c = new BedrockRuntimeClient({
      region: emu.region,
      credentials,
      endpoint: emu.endpoints.bedrockRuntime,
      maxAttempts: 1,
    })
    t.teardown(() => c.destroy())
    return c
  }
  const input = converseInput(CASES.text)
  await rejectsWith(
    t,
    () => count(client({ ...emu.credentials, secretAccessKey: 'not-the-secret' }), input),
    'InvalidSignatureException',
    403,
  )
  await rejectsWith(
    t,
    () => count(client({ ...emu.credentials, accessKeyId: 'AKIDNOTTHEEMULATORS1' }), input),
    'UnrecognizedClientException',
    403,
  )
  t.true((await count(client(emu.credentials), input)) > 0)
})
