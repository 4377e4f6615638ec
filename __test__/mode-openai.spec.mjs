// OpenAI-compatible mode against the emulator's /v1/chat/completions: the Claude body goes out as
// an OpenAI request and the answer comes back as a Bedrock Claude body.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, makeClient, settle, startEmu } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { BatchInferenceClient, InvokeModelCommand } = require('../index.js')

function openaiClient(t, emu, openai = {}) {
  const client = new BatchInferenceClient({
    mode: 'openai',
    region: emu.region,
    openai: { model: 'hosted_vllm/emulator-chat', apiBase: emu.endpoints.openai, apiKey: 'sk-local-test', ...openai },
  })
  t.teardown(() => client.destroy())
  return client
}

async function claude(client, body) {
  const out = await client.send(
    new InvokeModelCommand({ modelId: CLAUDE, contentType: 'application/json', body: JSON.stringify(body) }),
  )
  return JSON.parse(out.body.transformToString())
}

test('openai mode answers in the Bedrock Claude shape with the prompt and usage', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const r = await claude(client, claudeBody('What is 2 + 2?'))
  t.deepEqual(Object.keys(r), ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'stop_sequence', 'usage'])
  t.is(r.type, 'message')
  t.is(r.role, 'assistant')
  t.is(r.model, 'emulator-chat')
  t.true(r.content[0].text.includes('What is 2 + 2?'))
  t.is(r.stop_reason, 'end_turn')
  t.is(r.stop_sequence, null)
  t.true(r.usage.input_tokens > 0 && r.usage.output_tokens > 0)
})

test('openai mode maps tool calls to tool_use blocks with parsed input', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const body = {
    ...claudeBody('weather in Paris'),
    tools: [
      {
        name: 'get_weather',
        description: 'Weather',
        input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    ],
    tool_choice: { type: 'tool', name: 'get_weather' },
  }
  const r = await claude(client, body)
  t.is(r.stop_reason, 'tool_use')
  const use = r.content.find((b) => b.type === 'tool_use')
  t.is(use.name, 'get_weather')
  t.is(typeof use.input, 'object')
  t.true(use.input.city.includes('weather in Paris'))
})

test('openai mode maps length and matched stop strings to Claude stop reasons', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const cut = await claude(client, { ...claudeBody('one two three four five six seven'), max_tokens: 3 })
  t.is(cut.stop_reason, 'max_tokens')
  const stopped = await claude(client, { ...claudeBody('alpha HALT beta'), stop_sequences: ['HALT'] })
  t.is(stopped.stop_reason, 'stop_sequence')
  t.is(stopped.stop_sequence, 'HALT')
})

test('openai mode maps server errors to AWS exception names', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  for (const [marker, name, status] of [
    ['[[error:400]]', 'ValidationException', 400],
    ['[[error:401]]', 'AccessDeniedException', 401],
    ['[[error:404]]', 'ResourceNotFoundException', 404],
    ['[[error:500]]', 'InternalServerException', 500],
    ['[[error:503]]', 'ServiceUnavailableException', 503],
  ]) {
    const o = await settle(claude(client, claudeBody(`fail ${marker}`)))
    t.false(o.ok, marker)
    t.is(o.error.name, name, marker)
    t.is(o.error.$metadata.httpStatusCode, status, marker)
  }
})

test('openai mode retries a throttled call, then rejects with ThrottlingException', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const t0 = performance.now()
  const o = await settle(claude(client, claudeBody('slow down [[error:429]]')))
  t.false(o.ok)
  t.is(o.error.name, 'ThrottlingException')
  // Three retries with backoff (200, 400, 800 ms) happen before the rejection.
  t.true(performance.now() - t0 >= 1400, `rejected after ${Math.round(performance.now() - t0)} ms`)
})

test("openai mode waits as long as a 429 answer's Retry-After says, then gets its answer", async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const t0 = performance.now()
  // The emulator throttles the first request with this body, with Retry-After: 1.2 (seconds).
  const o = await settle(claude(client, claudeBody('patience [[retry-after:1.2]]')))
  const waited = performance.now() - t0
  t.true(o.ok, o.error?.message)
  t.regex(o.value.content[0].text, /patience/)
  // Our own backoff would have retried after ~200 ms: waiting 1.2 s means the header was read.
  t.true(waited >= 1150, `answered after ${Math.round(waited)} ms`)
})

test('openai mode refuses a body it cannot convert with a ValidationException that says why', async (t) => {
  const { emu } = await startEmu(t)
  const client = openaiClient(t, emu)
  const titan = await settle(claude(client, { inputText: 'hello' }))
  t.false(titan.ok)
  t.is(titan.error.name, 'ValidationException')
  t.regex(titan.error.message, /Claude/i)
})

test('openai mode needs an api base for hosted_vllm models, and says so at construction', (t) => {
  const e = t.throws(() => new BatchInferenceClient({ mode: 'openai', openai: { model: 'hosted_vllm/x' } }))
  t.is(e.name, 'ValidationException')
  t.regex(e.message, /apiBase/)
})

test('the same client code runs unchanged in batch, direct and openai modes', async (t) => {
  const { emu } = await startEmu(t)
  const ask = async (client) => {
    const questions = Array.from({ length: 30 }, (_, i) => `What is ${i} + ${i}?`)
    const answers = await Promise.all(
      questions.map(async (q) => {
        const out = await client.send(
          new InvokeModelCommand({
            modelId: CLAUDE,
            contentType: 'application/json',
            body: JSON.stringify(claudeBody(q)),
          }),
        )
        return JSON.parse(new TextDecoder().decode(out.body)).content[0].text
      }),
    )
    await client.close()
    return answers.every((a, i) => a.includes(questions[i]))
  }
  const { client: batch } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const direct = new BatchInferenceClient({
    mode: 'direct',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
  })
  const openai = openaiClient(t, emu)
  t.teardown(() => direct.destroy())
  t.true(await ask(batch), 'batch')
  t.true(await ask(direct), 'direct')
  t.true(await ask(openai), 'openai')
  t.is(batch.stats().jobs.length, 1)
})

test('setup() in the seed style selects the mode: litellmMode and debugMode', async (t) => {
  const { emu } = await startEmu(t)
  const lite = new BatchInferenceClient()
  t.teardown(() => lite.destroy())
  await lite.setup({
    modelId: 'not-used',
    litellmMode: true,
    litellmModel: 'hosted_vllm/emulator-chat',
    litellmApiBase: emu.endpoints.openai,
  })
  t.is(lite.config.mode, 'openai')
  const out = await lite.invokeModel({
    body: JSON.stringify(claudeBody('seed style')),
    contentType: 'application/json',
  })
  t.true(JSON.parse(out.body.transformToString()).content[0].text.includes('seed style'))

  const debug = new BatchInferenceClient()
  t.teardown(() => debug.destroy())
  await debug.setup({
    modelId: CLAUDE,
    debugMode: true,
    region: emu.region,
    endpoints: emu.endpoints,
    credentials: emu.credentials,
  })
  t.is(debug.config.mode, 'direct')
  const d = await debug.invokeModel({
    body: JSON.stringify(claudeBody('debug style')),
    contentType: 'application/json',
  })
  t.true(JSON.parse(d.body.transformToString()).content[0].text.includes('debug style'))
  await t.throwsAsync(() => new BatchInferenceClient().setup({ litellmMode: true }), { message: /litellmModel/ })
  await t.throwsAsync(() => new BatchInferenceClient().setup({ bogus: 1 }), { message: /bogus/ })
})

test('a bedrock/ model string in openai mode is plain on-demand InvokeModel of that model', async (t) => {
  const { emu } = await startEmu(t)
  const client = new BatchInferenceClient({
    mode: 'openai',
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    openai: { model: 'bedrock/amazon.nova-lite-v1:0' },
  })
  t.teardown(() => client.destroy())
  // The command's model id is not used: the model string names the Bedrock model.
  const out = await client.send(
    new InvokeModelCommand({
      modelId: 'not-used',
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'nova via bedrock/' }] }] }),
    }),
  )
  const r = JSON.parse(out.body.transformToString())
  t.true(r.output.message.content[0].text.includes('nova via bedrock/'))
  const seen = await fetch(`${emu.endpoints.bedrock}/_emulator/runtime-requests`).then((x) => x.json())
  t.is(seen.at(-1).modelId, 'amazon.nova-lite-v1:0')
})
