// The emulator's streaming runtime operations through the real @aws-sdk/client-bedrock-runtime:
// ConverseStreamCommand and InvokeModelWithResponseStreamCommand, over the protocol the SDK picks
// (its default NodeHttp2Handler speaks cleartext HTTP/2 to an http:// endpoint) and over HTTP/1.1
// (NodeHttpHandler). Expectations come from the bedrock-runtime service model (ConverseStreamOutput,
// ResponseStream) and AWS's per-family streaming formats, never from the emulator's code: every
// stream is compared with the answer of the non-streaming twin for the same request.

import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ModelStreamErrorException,
  ModelTimeoutException,
  ServiceUnavailableException,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import test from 'ava'

import {
  claudeBody,
  errorCodeOf,
  llamaBody,
  MODELS,
  makeRecords,
  mistralBody,
  novaBody,
  readJobOutput,
  runJob,
  runtimeRequests,
  startEmu,
  titanTextBody,
} from './helpers.mjs'

const FAMILIES = ['claude', 'nova', 'llama', 'mistral', 'titanText']
const BODY = { claude: claudeBody, nova: novaBody, llama: llamaBody, mistral: mistralBody, titanText: titanTextBody }
const QUESTION = 'Please explain, in several words, how streams of events are framed on the wire'

const WEATHER_SCHEMA = {
  type: 'object',
  properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['city', 'unit'],
}

/** Every event of a stream (an async iterable), and the error that ended it, if any. */
async function drain(stream) {
  const events = []
  try {
    for await (const e of stream) events.push(e)
  } catch (error) {
    return { events, error }
  }
  return { events, error: undefined }
}

/** The union member name of one stream event (exactly one is set). */
function kindOf(event) {
  const keys = Object.keys(event).filter((k) => event[k] !== undefined)
  return keys.length === 1 ? keys[0] : `several: ${keys.join(',')}`
}

const decoder = new TextDecoder()
const chunksOf = (events) => events.map((e) => JSON.parse(decoder.decode(e.chunk.bytes)))

/** Checks a ConverseStream's events against ConverseStreamOutput and rebuilds the message. */
function rebuildConverse(t, events) {
  const kinds = events.map(kindOf)
  t.is(kinds[0], 'messageStart')
  t.is(events[0].messageStart.role, 'assistant')
  t.deepEqual(kinds.slice(-2), ['messageStop', 'metadata'])
  const blocks = []
  let open = -1
  for (const e of events.slice(1, -2)) {
    const kind = kindOf(e)
    t.true(['contentBlockStart', 'contentBlockDelta', 'contentBlockStop'].includes(kind), kind)
    const i = e[kind].contentBlockIndex
    t.true(Number.isInteger(i) && i >= 0, 'contentBlockIndex')
    if (kind === 'contentBlockStop') {
      t.is(i, open, 'a block stops after its deltas')
      open = -1
      continue
    }
    if (open === -1) {
      t.is(i, blocks.length, 'blocks come in order')
      blocks.push({ text: '', input: '', reasoning: '', signature: undefined, start: undefined, deltas: 0 })
      open = i
    }
    t.is(i, open)
    const b = blocks[i]
    if (kind === 'contentBlockStart') {
      t.is(b.deltas, 0, 'a start comes first')
      b.start = e.contentBlockStart.start
      continue
    }
    const d = e.contentBlockDelta.delta
    t.is(Object.keys(d).filter((k) => d[k] !== undefined).length, 1, 'a delta is a union with one member')
    b.deltas += 1
    if (d.text !== undefined) b.text += d.text
    if (d.toolUse) b.input += d.toolUse.input
    if (d.reasoningContent?.text !== undefined) b.reasoning += d.reasoningContent.text
    if (d.reasoningContent?.signature !== undefined) b.signature = d.reasoningContent.signature
  }
  t.is(open, -1, 'every block was stopped')
  const content = blocks.map((b) => {
    if (b.start?.toolUse) return { toolUse: { ...b.start.toolUse, input: JSON.parse(b.input) } }
    if (b.reasoning || b.signature)
      return { reasoningContent: { reasoningText: { text: b.reasoning, signature: b.signature } } }
    return { text: b.text }
  })
  return { content, blocks, stop: events.at(-2).messageStop, metadata: events.at(-1).metadata, kinds }
}

/** The answer text of a family's InvokeModel body, and of its stream chunks put together. */
const TEXT = {
  claude: {
    whole: (b) => b.content.find((c) => c.type === 'text').text,
    stream: (cs) =>
      cs
        .filter((c) => c.type === 'content_block_delta' && c.delta.type === 'text_delta')
        .map((c) => c.delta.text)
        .join(''),
  },
  nova: {
    whole: (b) => b.output.message.content[0].text,
    stream: (cs) =>
      cs
        .filter((c) => c.contentBlockDelta?.delta.text !== undefined)
        .map((c) => c.contentBlockDelta.delta.text)
        .join(''),
  },
  llama: { whole: (b) => b.generation, stream: (cs) => cs.map((c) => c.generation).join('') },
  mistral: { whole: (b) => b.outputs[0].text, stream: (cs) => cs.map((c) => c.outputs[0].text).join('') },
  titanText: { whole: (b) => b.results[0].outputText, stream: (cs) => cs.map((c) => c.outputText).join('') },
}

async function invokeBoth(runtime, modelId, body) {
  const whole = await runtime.send(
    new InvokeModelCommand({
      modelId,
      body: JSON.stringify(body),
      contentType: 'application/json',
      accept: 'application/json',
    }),
  )
  const streamed = await runtime.send(
    new InvokeModelWithResponseStreamCommand({
      modelId,
      body: JSON.stringify(body),
      contentType: 'application/json',
      accept: 'application/json',
    }),
  )
  return { wholeBody: JSON.parse(whole.body.transformToString()), streamed }
}

// ---------------------------------------------------------------------------
// ConverseStream

for (const family of FAMILIES) {
  test(`ConverseStream (${family}): well-formed events whose deltas make the Converse answer`, async (t) => {
    const { runtime } = await startEmu(t)
    const input = {
      modelId: MODELS[family],
      messages: [{ role: 'user', content: [{ text: `${QUESTION} (${family})` }] }],
      inferenceConfig: { maxTokens: 200 },
    }
    const whole = await runtime.send(new ConverseCommand(input))
    const out = await runtime.send(new ConverseStreamCommand(input))
    t.is(out.$metadata.httpStatusCode, 200)
    const { events, error } = await drain(out.stream)
    t.is(error, undefined)
    const r = rebuildConverse(t, events)
    t.deepEqual(r.content, whole.output.message.content)
    t.true(r.blocks[0].deltas > 1, 'the text comes in several deltas')
    t.false(r.kinds.includes('contentBlockStart'), 'text blocks have no start event')
    t.is(r.stop.stopReason, whole.stopReason)
    t.deepEqual(r.metadata.usage, whole.usage)
    t.true(Number.isInteger(r.metadata.metrics.latencyMs))
  })
}

test('ConverseStream: a stop sequence, maxTokens and the tiers come through as in Converse', async (t) => {
  const { runtime } = await startEmu(t)
  for (const extra of [
    { inferenceConfig: { stopSequences: ['framed'] } },
    { inferenceConfig: { maxTokens: 4 } },
    { performanceConfig: { latency: 'optimized' }, serviceTier: { type: 'priority' } },
  ]) {
    const input = { modelId: MODELS.claude, messages: [{ role: 'user', content: [{ text: QUESTION }] }], ...extra }
    const whole = await runtime.send(new ConverseCommand(input))
    const { events } = await drain((await runtime.send(new ConverseStreamCommand(input))).stream)
    const r = rebuildConverse(t, events)
    t.deepEqual(r.content, whole.output.message.content)
    t.is(r.stop.stopReason, whole.stopReason)
    t.deepEqual(r.metadata.performanceConfig, whole.performanceConfig)
    t.deepEqual(r.metadata.serviceTier, whole.serviceTier)
  }
})

test('ConverseStream: Claude extended thinking streams reasoning text, then its signature', async (t) => {
  const { runtime } = await startEmu(t)
  const input = {
    modelId: 'us.anthropic.claude-3-7-sonnet-20250219-v1:0',
    messages: [{ role: 'user', content: [{ text: 'Why is the sky blue?' }] }],
    additionalModelRequestFields: { thinking: { type: 'enabled', budget_tokens: 1024 } },
  }
  const whole = await runtime.send(new ConverseCommand(input))
  t.truthy(whole.output.message.content[0].reasoningContent?.reasoningText?.signature)
  const { events } = await drain((await runtime.send(new ConverseStreamCommand(input))).stream)
  const r = rebuildConverse(t, events)
  t.deepEqual(r.content, whole.output.message.content)
  const reasoningDeltas = events
    .filter((e) => e.contentBlockDelta?.contentBlockIndex === 0)
    .map((e) => Object.keys(e.contentBlockDelta.delta.reasoningContent))
  t.deepEqual(reasoningDeltas.at(-1), ['signature'], 'the signature ends the reasoning block')
})

// ---------------------------------------------------------------------------
// InvokeModelWithResponseStream

for (const family of FAMILIES) {
  test(`InvokeModelWithResponseStream (${family}): chunks in the family's format make the InvokeModel answer`, async (t) => {
    const { runtime } = await startEmu(t)
    const { wholeBody, streamed } = await invokeBoth(runtime, MODELS[family], BODY[family](`${QUESTION} (${family})`))
    t.is(streamed.$metadata.httpStatusCode, 200)
    t.is(streamed.contentType, 'application/json')
    const { events, error } = await drain(streamed.body)
    t.is(error, undefined)
    t.true(
      events.every((e) => kindOf(e) === 'chunk'),
      'only chunk events',
    )
    const chunks = chunksOf(events)
    t.true(chunks.length > 1, 'several chunks')
    t.is(TEXT[family].stream(chunks), TEXT[family].whole(wholeBody))
    // Bedrock's invocation metrics end the stream, with the token counts of the InvokeModel answer.
    const metrics = chunks.at(-1)['amazon-bedrock-invocationMetrics']
    t.truthy(metrics, 'the last chunk carries amazon-bedrock-invocationMetrics')
    t.false(
      chunks.slice(0, -1).some((c) => c['amazon-bedrock-invocationMetrics']),
      'only the last one',
    )
    const counts = COUNTS[family](wholeBody)
    if (counts) t.deepEqual([metrics.inputTokenCount, metrics.outputTokenCount], counts)
    t.true(Number.isInteger(metrics.invocationLatency) && Number.isInteger(metrics.firstByteLatency))
    t.true(metrics.firstByteLatency <= metrics.invocationLatency)
    FORMAT[family](t, chunks, wholeBody)
  })
}

/** Input and output tokens of a family's InvokeModel answer (Mistral's answer has none). */
const COUNTS = {
  claude: (b) => [b.usage.input_tokens, b.usage.output_tokens],
  nova: (b) => [b.usage.inputTokens, b.usage.outputTokens],
  llama: (b) => [b.prompt_token_count, b.generation_token_count],
  mistral: () => undefined,
  titanText: (b) => [b.inputTextTokenCount, b.results[0].tokenCount],
}

/** Per family: the stream's own shape (AWS's model parameter pages and Anthropic's stream events). */
const FORMAT = {
  claude(t, chunks, whole) {
    t.deepEqual(
      [...new Set(chunks.map((c) => c.type))],
      [
        'message_start',
        'content_block_start',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    )
    const start = chunks[0].message
    t.like(start, {
      id: whole.id,
      type: 'message',
      role: 'assistant',
      model: whole.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
    })
    t.is(start.usage.input_tokens, whole.usage.input_tokens)
    t.deepEqual(chunks[1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })
    const delta = chunks.find((c) => c.type === 'message_delta')
    t.deepEqual(delta.delta, { stop_reason: whole.stop_reason, stop_sequence: whole.stop_sequence })
    t.is(delta.usage.output_tokens, whole.usage.output_tokens)
    t.is(chunks.at(-1).type, 'message_stop')
  },
  nova(t, chunks, whole) {
    t.deepEqual(chunks[0], { messageStart: { role: 'assistant' } })
    t.deepEqual(chunks.at(-2), { messageStop: { stopReason: whole.stopReason } })
    t.deepEqual(chunks.at(-1).metadata.usage, whole.usage)
  },
  llama(t, chunks, whole) {
    t.is(chunks[0].prompt_token_count, whole.prompt_token_count)
    t.true(chunks.slice(1).every((c) => c.prompt_token_count === null))
    t.is(chunks.at(-1).generation_token_count, whole.generation_token_count)
    t.true(chunks.slice(0, -1).every((c) => c.stop_reason === null))
    t.is(chunks.at(-1).stop_reason, whole.stop_reason)
  },
  mistral(t, chunks, whole) {
    t.true(chunks.slice(0, -1).every((c) => c.outputs[0].stop_reason === null))
    t.is(chunks.at(-1).outputs[0].stop_reason, whole.outputs[0].stop_reason)
  },
  titanText(t, chunks, whole) {
    t.deepEqual(
      chunks.map((c) => c.index),
      chunks.map((_, i) => i),
    )
    t.true(chunks.every((c) => c.inputTextTokenCount === whole.inputTextTokenCount))
    t.is(chunks.at(-1).totalOutputTextTokenCount, whole.results[0].tokenCount)
    t.is(chunks.at(-1).completionReason, whole.results[0].completionReason)
    t.true(chunks.slice(0, -1).every((c) => c.completionReason === null))
  },
}

test('InvokeModelWithResponseStream: Mistral chat bodies stream their choices', async (t) => {
  const { runtime } = await startEmu(t)
  const body = { messages: [{ role: 'user', content: `${QUESTION} (mistral large)` }], max_tokens: 100 }
  const { wholeBody, streamed } = await invokeBoth(runtime, 'mistral.mistral-large-2407-v1:0', body)
  const chunks = chunksOf((await drain(streamed.body)).events)
  t.is(chunks.map((c) => c.choices[0].message.content).join(''), wholeBody.choices[0].message.content)
  t.is(chunks.at(-1).choices[0].stop_reason, wholeBody.choices[0].stop_reason)
  t.truthy(chunks.at(-1)['amazon-bedrock-invocationMetrics'])
})

test('InvokeModelWithResponseStream: an embeddings model cannot stream (400 ValidationException)', async (t) => {
  const { runtime } = await startEmu(t)
  const err = await t.throwsAsync(() =>
    runtime.send(
      new InvokeModelWithResponseStreamCommand({
        modelId: MODELS.titanEmbed,
        body: JSON.stringify({ inputText: 'x' }),
        contentType: 'application/json',
      }),
    ),
  )
  t.true(err instanceof ValidationException, err.name)
  t.is(err.$metadata.httpStatusCode, 400)
  t.is(err.message, 'The model is unsupported for streaming.')
})

// ---------------------------------------------------------------------------
// Protocols: what the SDK picks (HTTP/2 without TLS) and HTTP/1.1

test('the default client streams over cleartext HTTP/2 and a NodeHttpHandler client over HTTP/1.1, with the same events', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const h1 = new BedrockRuntimeClient({
    region: emu.region,
    credentials: { ...emu.credentials },
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(),
  })
  t.teardown(() => h1.destroy())
  const input = { modelId: MODELS.nova, messages: [{ role: 'user', content: [{ text: QUESTION }] }] }
  const body = JSON.stringify(claudeBody(QUESTION))
  const seen = {}
  for (const [name, client] of [
    ['default', runtime],
    ['http1', h1],
  ]) {
    const converse = await drain((await client.send(new ConverseStreamCommand(input))).stream)
    const invoke = await drain(
      (await client.send(new InvokeModelWithResponseStreamCommand({ modelId: MODELS.claude, body }))).body,
    )
    t.is(converse.error, undefined)
    t.is(invoke.error, undefined)
    seen[name] = { converse: converse.events, invoke: chunksOf(invoke.events) }
  }
  t.deepEqual(seen.http1.converse, seen.default.converse)
  t.deepEqual(seen.http1.invoke, seen.default.invoke)
  const log = (await runtimeRequests(emu)).filter((r) => r.operation.endsWith('stream'))
  t.deepEqual(
    log.map((r) => `${r.operation} ${r.httpVersion}`),
    [
      'converse-stream HTTP/2.0',
      'invoke-with-response-stream HTTP/2.0',
      'converse-stream HTTP/1.1',
      'invoke-with-response-stream HTTP/1.1',
    ],
  )
})

// ---------------------------------------------------------------------------
// Faults

const converseWith = (text) =>
  new ConverseStreamCommand({ modelId: MODELS.claude, messages: [{ role: 'user', content: [{ text }] }] })
const invokeWith = (text) =>
  new InvokeModelWithResponseStreamCommand({ modelId: MODELS.claude, body: JSON.stringify(claudeBody(text)) })

for (const [marker, Exception, status] of [
  ['[[error:400]]', ValidationException, 400],
  ['[[error:408]]', ModelTimeoutException, 408],
  ['[[error:429]]', ThrottlingException, 429],
  ['[[error:503]]', ServiceUnavailableException, 503],
]) {
  test(`${marker}: both streaming operations answer HTTP ${status} ${Exception.name} before any stream`, async (t) => {
    const { runtime } = await startEmu(t)
    for (const command of [converseWith(`fail ${marker}`), invokeWith(`fail ${marker}`)]) {
      const err = await t.throwsAsync(() => runtime.send(command))
      t.true(err instanceof Exception, `${command.constructor.name}: ${err.name}`)
      t.is(err.$metadata.httpStatusCode, status)
    }
  })
}

test('[[error:424]]: the stream starts, then ends with modelStreamErrorException', async (t) => {
  const { runtime } = await startEmu(t)
  const converse = await drain((await runtime.send(converseWith('fail [[error:424]]'))).stream)
  t.deepEqual(converse.events.map(kindOf), ['messageStart', 'contentBlockDelta'], 'the answer began')
  t.true(converse.error instanceof ModelStreamErrorException, String(converse.error))
  t.is(converse.error.originalStatusCode, 424)
  t.is(typeof converse.error.message, 'string')
  const invoke = await drain((await runtime.send(invokeWith('fail [[error:424]]'))).body)
  t.deepEqual(
    chunksOf(invoke.events).map((c) => c.type),
    ['message_start', 'content_block_start', 'content_block_delta'],
  )
  t.true(invoke.error instanceof ModelStreamErrorException, String(invoke.error))
})

for (const [code, converseException, invokeException] of [
  [429, ThrottlingException, ThrottlingException],
  [503, ServiceUnavailableException, ServiceUnavailableException],
  [400, ValidationException, ValidationException],
  [408, ModelStreamErrorException, ModelTimeoutException],
]) {
  test(`[[stream-error:${code}]]: ${converseException.name} (ConverseStream) and ${invokeException.name} (InvokeModelWithResponseStream) inside the stream`, async (t) => {
    const { runtime } = await startEmu(t)
    const converse = await runtime.send(converseWith(`x [[stream-error:${code}]]`))
    t.is(converse.$metadata.httpStatusCode, 200)
    const c = await drain(converse.stream)
    t.true(c.events.length > 0)
    t.true(c.error instanceof converseException, String(c.error))
    const i = await drain((await runtime.send(invokeWith(`x [[stream-error:${code}]]`))).body)
    t.true(i.events.length > 0)
    t.true(i.error instanceof invokeException, String(i.error))
  })
}

test('the streaming routes check signatures and the model like their twins', async (t) => {
  const { emu, runtime } = await startEmu(t)
  const stranger = new BedrockRuntimeClient({
    region: emu.region,
    credentials: { accessKeyId: 'AKIDSOMEONEELSE', secretAccessKey: 'not-the-emulators' },
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
  })
  t.teardown(() => stranger.destroy())
  const denied = await t.throwsAsync(() => stranger.send(converseWith('hello')))
  t.is(denied.name, 'UnrecognizedClientException')
  t.is(denied.$metadata.httpStatusCode, 403)
  const invalid = await t.throwsAsync(() =>
    runtime.send(
      new ConverseStreamCommand({
        modelId: MODELS.claude,
        messages: [{ role: 'user', content: [{ text: 'x' }] }],
        inferenceConfig: { maxTokens: 0 },
      }),
    ),
  )
  t.true(invalid instanceof ValidationException)
  t.regex(
    invalid.message,
    /^1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1/,
  )
  const header = await t.throwsAsync(() =>
    runtime.send(
      new InvokeModelWithResponseStreamCommand({
        modelId: MODELS.claude,
        body: JSON.stringify(claudeBody('x')),
        serviceTier: 'cheapest',
      }),
    ),
  )
  t.true(header instanceof ValidationException)
  t.regex(header.message, /at 'serviceTier'/)
})

// ---------------------------------------------------------------------------
// Tool use

const weatherTool = {
  toolSpec: { name: 'get_weather', description: 'The weather in a city', inputSchema: { json: WEATHER_SCHEMA } },
}

test('ConverseStream tool use: a toolUse block when asked, then text that mentions the tool result', async (t) => {
  const { runtime } = await startEmu(t)
  const first = [{ role: 'user', content: [{ text: 'What is the weather in Lisbon? [[tool:get_weather]]' }] }]
  const input = { modelId: MODELS.claude, messages: first, toolConfig: { tools: [weatherTool] } }
  const whole = await runtime.send(new ConverseCommand(input))
  t.is(whole.stopReason, 'tool_use')
  const { events } = await drain((await runtime.send(new ConverseStreamCommand(input))).stream)
  const r = rebuildConverse(t, events)
  t.deepEqual(r.content, whole.output.message.content)
  t.is(r.stop.stopReason, 'tool_use')
  const use = r.content.find((b) => b.toolUse).toolUse
  t.is(use.name, 'get_weather')
  t.deepEqual(use.input, { city: 'What is the weather in Lisbon?', unit: 'celsius' })
  t.true(r.blocks.find((b) => b.start).deltas >= 1)
  t.deepEqual(Object.keys(r.blocks.find((b) => b.start).start.toolUse).sort(), ['name', 'toolUseId'])

  // Without the trigger, the same tools give a plain answer.
  const plain = await runtime.send(
    new ConverseCommand({
      ...input,
      messages: [{ role: 'user', content: [{ text: 'What is the weather in Lisbon?' }] }],
    }),
  )
  t.is(plain.stopReason, 'end_turn')

  const second = [
    ...first,
    whole.output.message,
    {
      role: 'user',
      content: [
        { toolResult: { toolUseId: use.toolUseId, content: [{ text: 'Sunny, 24 degrees' }], status: 'success' } },
      ],
    },
  ]
  const next = { ...input, messages: second }
  const answer = await runtime.send(new ConverseCommand(next))
  t.is(answer.stopReason, 'end_turn')
  const streamed = rebuildConverse(
    t,
    (await drain((await runtime.send(new ConverseStreamCommand(next))).stream)).events,
  )
  t.deepEqual(streamed.content, answer.output.message.content)
  t.true(streamed.content[0].text.includes('Sunny, 24 degrees'))
})

test('ConverseStream tool use: toolChoice any calls a tool with no text before it', async (t) => {
  const { runtime } = await startEmu(t)
  const input = {
    modelId: MODELS.nova,
    messages: [{ role: 'user', content: [{ text: 'Lisbon' }] }],
    toolConfig: { tools: [weatherTool], toolChoice: { any: {} } },
  }
  const r = rebuildConverse(t, (await drain((await runtime.send(new ConverseStreamCommand(input))).stream)).events)
  t.is(r.content.length, 1)
  t.is(r.content[0].toolUse.name, 'get_weather')
  t.is(r.kinds[1], 'contentBlockStart')
})

test('InvokeModelWithResponseStream tool use: Claude streams tool_use with input_json_delta, then answers the tool_result', async (t) => {
  const { runtime } = await startEmu(t)
  const tools = [{ name: 'get_weather', description: 'The weather in a city', input_schema: WEATHER_SCHEMA }]
  const body = claudeBody('Weather in Porto? use the tool', { tools })
  const { wholeBody, streamed } = await invokeBoth(runtime, MODELS.claude, body)
  t.is(wholeBody.stop_reason, 'tool_use')
  const chunks = chunksOf((await drain(streamed.body)).events)
  const start = chunks.find((c) => c.type === 'content_block_start' && c.content_block.type === 'tool_use')
  const use = wholeBody.content.find((b) => b.type === 'tool_use')
  t.deepEqual(start.content_block, { type: 'tool_use', id: use.id, name: 'get_weather', input: {} })
  const json = chunks
    .filter((c) => c.type === 'content_block_delta' && c.index === start.index)
    .map((c) => {
      t.is(c.delta.type, 'input_json_delta')
      return c.delta.partial_json
    })
    .join('')
  t.deepEqual(JSON.parse(json), use.input)
  t.deepEqual(use.input, { city: 'Weather in Porto? use the tool', unit: 'celsius' })
  t.is(chunks.find((c) => c.type === 'message_delta').delta.stop_reason, 'tool_use')

  const followUp = claudeBody('unused', {
    tools,
    messages: [
      body.messages[0],
      { role: 'assistant', content: wholeBody.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Foggy, 17 degrees' }] },
    ],
  })
  const next = await invokeBoth(runtime, MODELS.claude, followUp)
  t.is(next.wholeBody.stop_reason, 'end_turn')
  const text = TEXT.claude.stream(chunksOf((await drain(next.streamed.body)).events))
  t.is(text, next.wholeBody.content[0].text)
  t.true(text.includes('Foggy, 17 degrees'))
})

test('InvokeModelWithResponseStream tool use: Nova native streams contentBlockStart and toolUse deltas', async (t) => {
  const { runtime } = await startEmu(t)
  const body = { ...novaBody('Weather in Faro? [[tool]]'), toolConfig: { tools: [weatherTool] } }
  const { wholeBody, streamed } = await invokeBoth(runtime, MODELS.nova, body)
  t.is(wholeBody.stopReason, 'tool_use')
  const use = wholeBody.output.message.content.find((b) => b.toolUse).toolUse
  const chunks = chunksOf((await drain(streamed.body)).events)
  const start = chunks.find((c) => c.contentBlockStart)
  t.deepEqual(start.contentBlockStart.start, { toolUse: { toolUseId: use.toolUseId, name: 'get_weather' } })
  const json = chunks
    .filter((c) => c.contentBlockDelta?.delta.toolUse)
    .map((c) => c.contentBlockDelta.delta.toolUse.input)
    .join('')
  t.deepEqual(JSON.parse(json), use.input)
  t.deepEqual(chunks.find((c) => c.messageStop).messageStop, { stopReason: 'tool_use' })
})

test('batch: InvokeModel-type records with native tools get tool_use answers; their tool results get text', async (t) => {
  const ctx = await startEmu(t)
  const tools = [{ name: 'get_weather', input_schema: WEATHER_SCHEMA }]
  const records = makeRecords(100, {
    promptOf: (i) => (i % 2 === 0 ? `Weather in city ${i}? [[tool:get_weather]]` : `Question ${i}`),
    bodyOf: (text) => claudeBody(text, { tools }),
  })
  records[99].modelInput.messages = [
    { role: 'user', content: 'Weather? [[tool:get_weather]]' },
    {
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo', unit: 'celsius' } }],
    },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'Snow, -3 degrees' }] },
  ]
  const { job, outputPrefix, jobId } = await runJob(ctx, records)
  t.is(job.status, 'Completed')
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  const byId = new Map(out.records.map((r) => [r.recordId, r]))
  for (const [i, rec] of records.entries()) {
    const line = byId.get(rec.recordId)
    t.is(line.error, undefined)
    if (i === 99) {
      t.is(line.modelOutput.stop_reason, 'end_turn')
      t.true(line.modelOutput.content[0].text.includes('Snow, -3 degrees'))
    } else if (i % 2 === 0) {
      t.is(line.modelOutput.stop_reason, 'tool_use', rec.recordId)
      t.deepEqual(line.modelOutput.content.at(-1).input, { city: `Weather in city ${i}?`, unit: 'celsius' })
    } else {
      t.is(line.modelOutput.stop_reason, 'end_turn', rec.recordId)
    }
  }
})

test('batch: a Converse-type record with toolConfig still fails with a 400 record error', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100, { bodyOf: (text) => ({ messages: [{ role: 'user', content: [{ text }] }] }) })
  records[3].modelInput.toolConfig = { tools: [weatherTool] }
  const { job, outputPrefix, jobId } = await runJob(ctx, records, { modelInvocationType: 'Converse' })
  t.is(job.status, 'Completed')
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  const line = out.records.find((r) => r.recordId === records[3].recordId)
  t.is(errorCodeOf(line), 400)
  t.regex(line.error.errorMessage, /toolConfig/)
})
