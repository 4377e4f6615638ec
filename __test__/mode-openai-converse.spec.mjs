// OpenAI-compatible mode answers the Converse and streaming commands (issue 12): a Converse
// request goes out as an OpenAI chat completion to the emulator's /v1/chat/completions and comes
// back as a ConverseCommandOutput; the streaming commands read the server's own stream (SSE) and
// give ConverseStream events or Claude stream chunks; what chat completions cannot carry is a
// ValidationException naming it.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, settle, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const {
  BatchInferenceClient,
  ConverseCommand,
  ConverseStreamCommand,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
} = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

function openaiClient(t, emu) {
  const client = new BatchInferenceClient({
    mode: 'openai',
    region: emu.region,
    openai: { model: 'hosted_vllm/emulator-chat', apiBase: emu.endpoints.openai, apiKey: 'sk-local-test' },
  })
  t.teardown(() => client.destroy())
  return client
}

function ask(text, extra = {}) {
  return { modelId: CLAUDE, messages: [{ role: 'user', content: [{ text }] }], ...extra }
}

async function collect(iterable) {
  const out = []
  for await (const e of iterable) out.push(e)
  return out
}

test('openai mode: ConverseCommand gets a ConverseCommandOutput with the answer, stop reason, usage and metrics', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const out = await client.send(
    new ConverseCommand(
      ask('OpenAI Converse: what is 2 + 2?', {
        system: [{ text: 'Be brief.' }],
        inferenceConfig: { maxTokens: 50, temperature: 0.1 },
      }),
    ),
  )
  t.deepEqual(Object.keys(out), ['output', 'stopReason', 'usage', 'metrics', '$metadata'])
  t.is(out.output.message.role, 'assistant')
  t.true(out.output.message.content[0].text.includes('OpenAI Converse: what is 2 + 2?'))
  t.is(out.stopReason, 'end_turn')
  t.true(out.usage.inputTokens > 0 && out.usage.outputTokens > 0)
  t.is(out.usage.totalTokens, out.usage.inputTokens + out.usage.outputTokens)
  t.is(typeof out.metrics.latencyMs, 'number')
})

test('openai mode: a Converse tool call comes back as a toolUse block with parsed input; the next turn carries its result', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const toolConfig = {
    tools: [
      {
        toolSpec: {
          name: 'get_weather',
          description: 'Weather',
          inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
        },
      },
    ],
    toolChoice: { tool: { name: 'get_weather' } },
  }
  const first = await client.send(new ConverseCommand(ask('weather in Paris', { toolConfig })))
  t.is(first.stopReason, 'tool_use')
  const use = first.output.message.content.find((c) => c.toolUse).toolUse
  t.is(use.name, 'get_weather')
  t.is(typeof use.input, 'object')
  const next = await client.send(
    new ConverseCommand({
      modelId: CLAUDE,
      messages: [
        { role: 'user', content: [{ text: 'weather in Paris' }] },
        { role: 'assistant', content: [{ toolUse: use }] },
        { role: 'user', content: [{ toolResult: { toolUseId: use.toolUseId, content: [{ text: 'sunny, 21 C' }] } }] },
      ],
      toolConfig: { tools: toolConfig.tools },
    }),
  )
  t.is(next.output.message.role, 'assistant')
  t.true(next.output.message.content.length > 0)
})

test('openai mode: what chat completions cannot carry is a ValidationException naming it, and the other requests are answered', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const [bad, good] = await Promise.all([
    settle(
      client.send(
        new ConverseCommand({
          modelId: CLAUDE,
          messages: [
            {
              role: 'user',
              content: [
                { text: 'a video' },
                { video: { format: 'mp4', source: { bytes: new Uint8Array([1, 2, 3]) } } },
              ],
            },
          ],
        }),
      ),
    ),
    settle(client.send(new ConverseCommand(ask('a good one')))),
  ])
  t.false(bad.ok)
  t.is(bad.error.name, 'ValidationException')
  t.true(bad.error instanceof sdk.ValidationException)
  t.regex(bad.error.message, /video/)
  t.true(good.ok)
})

test('openai mode: ConverseStreamCommand reads the server stream as ConverseStream events; the text is the Converse answer', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const input = ask('OpenAI stream: tell me about tides in a few sentences.', { inferenceConfig: { maxTokens: 200 } })
  const [whole, streamed] = await Promise.all([
    client.send(new ConverseCommand(input)),
    client.send(new ConverseStreamCommand(input)),
  ])
  const events = await collect(streamed.stream)
  t.deepEqual(events[0], { messageStart: { role: 'assistant' } })
  t.true(events.filter((e) => e.contentBlockDelta).length > 1, 'the text came in several deltas')
  t.is(events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join(''), whole.output.message.content[0].text)
  t.is(events.find((e) => e.messageStop).messageStop.stopReason, whole.stopReason)
  t.deepEqual(events.at(-1).metadata.usage, whole.usage)
})

test('openai mode: InvokeModelWithResponseStreamCommand gives Claude stream chunks from the server stream', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const body = JSON.stringify(claudeBody('OpenAI chunks: describe a harbour.'))
  const [whole, streamed] = await Promise.all([
    client.send(new InvokeModelCommand({ modelId: CLAUDE, body })),
    client.send(new InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body })),
  ])
  const answer = JSON.parse(whole.body.transformToString())
  const payloads = (await collect(streamed.body)).map((e) => JSON.parse(Buffer.from(e.chunk.bytes).toString('utf8')))
  t.is(payloads[0].type, 'message_start')
  t.is(payloads.at(-1).type, 'message_stop')
  t.is(
    payloads
      .filter((p) => p.type === 'content_block_delta')
      .map((p) => p.delta.text)
      .join(''),
    answer.content[0].text,
  )
  const metrics = payloads.at(-1)['amazon-bedrock-invocationMetrics']
  t.is(metrics.outputTokenCount, answer.usage.output_tokens)
})

test('openai mode: a server stream that fails part way throws from the iterator', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const out = await client.send(new ConverseStreamCommand(ask('break [[stream-error:500]] mid-way')))
  const seen = []
  const r = await settle(
    (async () => {
      for await (const e of out.stream) seen.push(e)
    })(),
  )
  t.false(r.ok)
  t.is(r.error.name, 'ModelStreamErrorException')
  t.true(seen.length > 0, 'events before the failure arrived')
})
