// The emulator's OpenAI-compatible endpoint streams chat completions (`stream: true`) as server-sent
// `chat.completion.chunk`s, read here by the official `openai` package: the deltas put together
// give the non-streaming answer, `stream_options.include_usage` adds the usage chunk, a mid-stream
// error surfaces as the library's APIError and an error before the stream as its HTTP error.
// Expectations come from OpenAI's API reference (the chunk object, `stream_options`), not from the
// emulator's code. The engine's openai mode, which streams ConverseStreamCommand from the same SSE,
// is checked at the end.

import { createRequire } from 'node:module'
import test from 'ava'
import OpenAI from 'openai'
import { CLAUDE, settle, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const bridge = require('../index.js')

function openai(emu) {
  return new OpenAI({ baseURL: emu.endpoints.openai, apiKey: 'sk-local-test', maxRetries: 0 })
}

function ask(text, extra = {}) {
  return { model: 'emulator-chat', messages: [{ role: 'user', content: text }], ...extra }
}

async function collect(stream) {
  const chunks = []
  for await (const c of stream) chunks.push(c)
  return chunks
}

const contentOf = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')

test('streamed deltas put together are the non-streaming answer; the usage chunk comes last', async (t) => {
  const { emu } = await startEmu(t)
  const client = openai(emu)
  const request = ask('Tell me, in a good number of words, how a streamed answer is cut into pieces.')
  const whole = await client.chat.completions.create(request)
  const chunks = await collect(
    await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }),
  )

  t.true(chunks.every((c) => c.object === 'chat.completion.chunk'))
  t.is(new Set(chunks.map((c) => c.id)).size, 1, 'every chunk has the same id')
  t.is(new Set(chunks.map((c) => c.created)).size, 1, 'and the same created')
  t.true(chunks.every((c) => c.model === 'emulator-chat'))
  t.is(chunks[0].choices[0].delta.role, 'assistant')
  t.is(contentOf(chunks), whole.choices[0].message.content)
  t.true(chunks.filter((c) => c.choices[0]?.delta?.content).length > 3, 'the content comes in several pieces')

  const usage = chunks.at(-1)
  t.deepEqual(usage.choices, [])
  t.deepEqual(usage.usage, whole.usage)
  t.true(
    chunks.slice(0, -1).every((c) => c.usage === null),
    'the other chunks have usage: null',
  )
  const finish = chunks.at(-2).choices[0]
  t.is(finish.finish_reason, 'stop')
  t.deepEqual(finish.delta, {})
  t.true(chunks.slice(0, -2).every((c) => c.choices[0].finish_reason === null))
})

test('without include_usage no chunk carries usage', async (t) => {
  const { emu } = await startEmu(t)
  const chunks = await collect(await openai(emu).chat.completions.create({ ...ask('No usage, please.'), stream: true }))
  t.true(chunks.every((c) => c.usage === undefined && c.choices.length === 1))
  t.is(chunks.at(-1).choices[0].finish_reason, 'stop')
})

test('a tool call streams as deltas the library puts back together into the non-streaming call', async (t) => {
  const { emu } = await startEmu(t)
  const client = openai(emu)
  const request = ask('What is the weather in Oslo for the next days?', {
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather',
          parameters: {
            type: 'object',
            properties: { city: { type: 'string' }, days: { type: 'integer' } },
            required: ['city', 'days'],
          },
        },
      },
    ],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  })
  const whole = await client.chat.completions.create(request)
  const call = whole.choices[0].message.tool_calls[0]

  const chunks = await collect(
    await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }),
  )
  const deltas = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? [])
  t.true(deltas.length > 2, 'the arguments come in several chunks')
  t.is(deltas[0].index, 0)
  t.is(deltas[0].type, 'function')
  t.is(deltas[0].function.name, 'get_weather')
  t.true(deltas[0].id.startsWith('call_'))
  t.true(deltas.slice(1).every((d) => d.index === 0 && d.id === undefined && d.function.name === undefined))
  const args = deltas.map((d) => d.function.arguments).join('')
  t.deepEqual(JSON.parse(args), JSON.parse(call.function.arguments))
  t.is(chunks.at(-2).choices[0].finish_reason, 'tool_calls')

  // The library's own accumulator (ChatCompletionStream) rebuilds the same message.
  const final = await client.chat.completions.stream(request).finalChatCompletion()
  const message = final.choices[0].message
  t.is(message.content, whole.choices[0].message.content)
  t.is(message.tool_calls[0].function.name, 'get_weather')
  t.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), JSON.parse(call.function.arguments))
  t.is(final.choices[0].finish_reason, 'tool_calls')
})

test('[[stream-error:NNN]] breaks the stream after a few chunks; the library raises its APIError', async (t) => {
  const { emu } = await startEmu(t)
  const stream = await openai(emu).chat.completions.create({
    ...ask('This answer breaks halfway [[stream-error:503]]'),
    stream: true,
  })
  const seen = []
  const error = await t.throwsAsync(async () => {
    for await (const c of stream) seen.push(c)
  })
  t.true(error instanceof OpenAI.APIError, String(error))
  t.is(error.error.code, 503)
  t.is(error.error.type, 'server_error')
  t.truthy(error.message)
  t.true(seen.length >= 1, 'chunks came before the error')
  t.true(contentOf(seen).length > 0)
  t.true(seen.every((c) => c.choices[0].finish_reason === null))
})

test('an error marker stays an HTTP error before any stream', async (t) => {
  const { emu } = await startEmu(t)
  const client = openai(emu)
  const o = await settle(client.chat.completions.create({ ...ask('fail [[error:429]]'), stream: true }))
  t.false(o.ok)
  t.true(o.error instanceof OpenAI.RateLimitError, String(o.error))
  t.is(o.error.status, 429)
  const bad = await settle(client.chat.completions.create({ ...ask('fail [[error:400]]'), stream: true }))
  t.true(bad.error instanceof OpenAI.BadRequestError, String(bad.error))
})

test("openai mode streams ConverseStreamCommand from the emulator's SSE, as ConverseCommand answers", async (t) => {
  const { emu } = await startEmu(t)
  const client = new bridge.BatchInferenceClient({
    mode: 'openai',
    region: emu.region,
    openai: { model: 'hosted_vllm/emulator-chat', apiBase: emu.endpoints.openai, apiKey: 'sk-local-test' },
  })
  t.teardown(() => client.destroy())
  const input = (text) => ({
    modelId: CLAUDE,
    messages: [{ role: 'user', content: [{ text }] }],
    inferenceConfig: { maxTokens: 200 },
  })
  const question = 'Stream this answer through the engine in several pieces, please.'
  const whole = await client.send(new bridge.ConverseCommand(input(question)))
  const out = await client.send(new bridge.ConverseStreamCommand(input(question)))
  const events = []
  for await (const e of out.stream) events.push(e)
  const text = events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join('')
  t.is(text, whole.output.message.content[0].text)
  t.true(events.filter((e) => e.contentBlockDelta).length > 1)
  t.is(events.find((e) => e.messageStop).messageStop.stopReason, whole.stopReason)
  t.deepEqual(events.find((e) => e.metadata).metadata.usage, whole.usage)

  const broken = await client.send(new bridge.ConverseStreamCommand(input('Breaks [[stream-error:500]]')))
  const error = await t.throwsAsync(async () => {
    for await (const _ of broken.stream) {
      // read until the error
    }
  })
  t.is(error.name, 'ModelStreamErrorException')
})
