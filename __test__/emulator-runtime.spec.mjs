// Runtime (InvokeModel, Converse), the OpenAI-compatible endpoint, and parity between the
// runtime and batch answers — reference §4, §5 and issue 2.

import { ConverseCommand, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import test from 'ava'

import {
  answerText,
  assertFamilyShape,
  BODY_BY_FAMILY,
  captureResponseHeaders,
  claudeBody,
  isNonNegInt,
  joinUrl,
  MODELS,
  makeClients,
  makeRecords,
  readJobOutput,
  rejectsWith,
  runJob,
  startEmu,
  startEmulator,
} from './helpers.mjs'

const FAMILIES = ['claude', 'nova', 'llama', 'mistral', 'titanText', 'titanEmbed']

async function invoke(runtime, modelId, body) {
  const res = await runtime.send(
    new InvokeModelCommand({
      modelId,
      body: JSON.stringify(body),
      contentType: 'application/json',
      accept: 'application/json',
    }),
  )
  const text = res.body.transformToString()
  return { res, text, json: JSON.parse(text) }
}

// One emulator for the read-only runtime tests of this file.
let shared
test.before(async () => {
  const emu = await startEmulator()
  shared = { emu, ...makeClients(emu) }
})
test.after.always(async () => {
  if (shared) await shared.emu.stop()
})

// ---------------------------------------------------------------------------
// InvokeModel

for (const family of FAMILIES) {
  test(`InvokeModel on ${family} (${MODELS[family]}) returns that family's response shape`, async (t) => {
    const prompt = `Tell me about the number ${family.length * 7} please`
    const { res, json } = await invoke(shared.runtime, MODELS[family], BODY_BY_FAMILY[family](prompt))
    t.is(res.$metadata.httpStatusCode, 200)
    t.is(typeof res.$metadata.requestId, 'string', 'x-amzn-requestid becomes $metadata.requestId')
    t.true(res.$metadata.requestId.length > 0)
    t.regex(res.contentType, /^application\/json/)
    t.true(res.body instanceof Uint8Array)
    assertFamilyShape(t, family, json)
    if (family !== 'titanEmbed') {
      t.true(
        answerText(family, json).includes(prompt),
        `answer contains the prompt: ${JSON.stringify(json).slice(0, 300)}`,
      )
    }
  })
}

test('InvokeModel sends input and output token-count headers matching the Claude usage', async (t) => {
  const { runtime } = makeClients(shared.emu)
  const headers = captureResponseHeaders(runtime)
  const { json, res } = await invoke(runtime, MODELS.claude, claudeBody('Count my tokens please'))
  const h = headers[0]
  t.truthy(h, 'headers captured')
  t.is(h['x-amzn-requestid'], res.$metadata.requestId)
  t.is(Number(h['x-amzn-bedrock-input-token-count']), json.usage.input_tokens)
  t.is(Number(h['x-amzn-bedrock-output-token-count']), json.usage.output_tokens)
})

test('each InvokeModel call gets its own request id', async (t) => {
  const a = await invoke(shared.runtime, MODELS.claude, claudeBody('same question'))
  const b = await invoke(shared.runtime, MODELS.claude, claudeBody('same question'))
  t.not(a.res.$metadata.requestId, b.res.$metadata.requestId)
})

test('the answer is a function of model id and body: the same request gives identical bytes', async (t) => {
  for (const family of FAMILIES) {
    const body = BODY_BY_FAMILY[family]('Deterministic please: 17 * 3')
    const a = await invoke(shared.runtime, MODELS[family], body)
    const b = await invoke(shared.runtime, MODELS[family], body)
    t.is(a.text, b.text, `${family}: identical bytes`)
  }
})

test('different bodies give different answers and different Claude message ids', async (t) => {
  const a = await invoke(shared.runtime, MODELS.claude, claudeBody('First distinct question'))
  const b = await invoke(shared.runtime, MODELS.claude, claudeBody('Second distinct question'))
  t.not(a.json.id, b.json.id, 'ids derive from the body')
  t.true(answerText('claude', a.json).includes('First distinct question'))
  t.false(answerText('claude', b.json).includes('First distinct question'))
  const e1 = await invoke(shared.runtime, MODELS.titanEmbed, { inputText: 'alpha' })
  const e2 = await invoke(shared.runtime, MODELS.titanEmbed, { inputText: 'beta' })
  t.notDeepEqual(e1.json.embedding, e2.json.embedding, 'different texts embed differently')
})

test('the Claude answer contains the last user message of a multi-turn conversation with content blocks', async (t) => {
  const body = {
    anthropic_version: 'bedrock-2023-05-31',
    max_tokens: 100,
    system: 'You are terse.',
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'Earlier question about cats' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Cats are fine.' }] },
      { role: 'user', content: [{ type: 'text', text: 'Final question: how many legs has a spider?' }] },
    ],
  }
  const { json } = await invoke(shared.runtime, MODELS.claude, body)
  assertFamilyShape(t, 'claude', json)
  t.true(answerText('claude', json).includes('Final question: how many legs has a spider?'))
})

test('a cross-region inference profile id answers with the Claude shape', async (t) => {
  const { json } = await invoke(shared.runtime, MODELS.claudeProfile, claudeBody('Profile question 42'))
  assertFamilyShape(t, 'claude', json)
  t.true(answerText('claude', json).includes('Profile question 42'))
})

test('a model id given as a foundation-model ARN answers like the base id', async (t) => {
  const arn = `arn:aws:bedrock:${shared.emu.region}::foundation-model/${MODELS.claude}`
  const body = claudeBody('ARN question 7')
  const viaArn = await invoke(shared.runtime, arn, body)
  assertFamilyShape(t, 'claude', viaArn.json)
  t.true(answerText('claude', viaArn.json).includes('ARN question 7'))
})

const RUNTIME_ERRORS = [
  [400, 'ValidationException', 'client'],
  [408, 'ModelTimeoutException', 'client'],
  [429, 'ThrottlingException', 'client'],
  [500, 'InternalServerException', 'server'],
]

for (const [code, name, fault] of RUNTIME_ERRORS) {
  test(`InvokeModel with [[error:${code}]] rejects with ${name} and HTTP ${code}`, async (t) => {
    const err = await rejectsWith(
      t,
      () => invoke(shared.runtime, MODELS.claude, claudeBody(`Please fail [[error:${code}]]`)),
      name,
      code,
    )
    t.is(err.$fault, fault)
    t.is(typeof err.$metadata.requestId, 'string', 'errors carry a request id too')
  })
}

test('InvokeModel with a body that is not JSON is a ValidationException 400', async (t) => {
  await rejectsWith(
    t,
    () =>
      shared.runtime.send(
        new InvokeModelCommand({ modelId: MODELS.claude, body: 'not json at all', contentType: 'application/json' }),
      ),
    'ValidationException',
    400,
  )
  // The server is still fine afterwards.
  const { json } = await invoke(shared.runtime, MODELS.claude, claudeBody('still alive?'))
  t.true(answerText('claude', json).includes('still alive?'))
})

// ---------------------------------------------------------------------------
// Converse

test('Converse returns the assistant message containing the prompt, a stop reason, usage and metrics', async (t) => {
  const prompt = 'Converse: what is the capital of France?'
  const res = await shared.runtime.send(
    new ConverseCommand({
      modelId: MODELS.claude,
      messages: [{ role: 'user', content: [{ text: prompt }] }],
      inferenceConfig: { maxTokens: 100 },
    }),
  )
  t.is(res.$metadata.httpStatusCode, 200)
  t.is(typeof res.$metadata.requestId, 'string')
  assertFamilyShape(t, 'converse', res)
  t.true(res.output.message.content[0].text.includes(prompt))
  t.is(typeof res.metrics?.latencyMs, 'number', 'metrics.latencyMs is a number')
})

test('Converse on Nova, Llama and Mistral also answers with the last user text', async (t) => {
  for (const modelId of [MODELS.nova, MODELS.llama, MODELS.mistral]) {
    const prompt = `Converse on ${modelId}: say hello`
    const res = await shared.runtime.send(
      new ConverseCommand({
        modelId,
        system: [{ text: 'Be brief.' }],
        messages: [
          { role: 'user', content: [{ text: 'an earlier turn' }] },
          { role: 'assistant', content: [{ text: 'ok' }] },
          { role: 'user', content: [{ text: prompt }] },
        ],
      }),
    )
    assertFamilyShape(t, 'converse', res)
    t.true(
      res.output.message.content
        .map((c) => c.text ?? '')
        .join('')
        .includes(prompt),
      modelId,
    )
  }
})

test('Converse with [[error:429]] rejects with ThrottlingException 429', async (t) => {
  await rejectsWith(
    t,
    () =>
      shared.runtime.send(
        new ConverseCommand({
          modelId: MODELS.claude,
          messages: [{ role: 'user', content: [{ text: 'slow down [[error:429]]' }] }],
        }),
      ),
    'ThrottlingException',
    429,
  )
})

// ---------------------------------------------------------------------------
// Runtime and batch give the same answer

test('the batch modelOutput equals the runtime InvokeModel body for every family', async (t) => {
  const ctx = await startEmu(t)
  for (const family of FAMILIES) {
    const records = makeRecords(100, {
      bodyOf: BODY_BY_FAMILY[family],
      promptOf: (i) => `Parity ${family} question ${i}`,
      idPrefix: 'PAR',
    })
    const { job, jobId, outputPrefix } = await runJob(ctx, records, { modelId: MODELS[family] })
    t.is(job.status, 'Completed', `${family}: ${job.message}`)
    const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
    t.is(out.records.length, 100, `${family}: 100 lines`)
    for (const idx of [0, 37, 99]) {
      const rec = records[idx]
      const line = out.records.find((r) => r.recordId === rec.recordId)
      const rt = await invoke(ctx.runtime, MODELS[family], rec.modelInput)
      t.deepEqual(line.modelOutput, rt.json, `${family} ${rec.recordId}: batch and runtime agree`)
      t.is(
        JSON.stringify(line.modelOutput),
        JSON.stringify(rt.json),
        `${family} ${rec.recordId}: byte-identical when re-serialised`,
      )
    }
  }
})

test('the batch Converse modelOutput equals the runtime Converse answer', async (t) => {
  const ctx = await startEmu(t)
  const records = makeRecords(100, {
    bodyOf: (text) => ({ messages: [{ role: 'user', content: [{ text }] }], inferenceConfig: { maxTokens: 50 } }),
    promptOf: (i) => `Converse parity ${i}`,
  })
  const { job, jobId, outputPrefix } = await runJob(ctx, records, {
    modelId: MODELS.claude,
    modelInvocationType: 'Converse',
  })
  t.is(job.status, 'Completed', `message: ${job.message}`)
  const out = await readJobOutput(ctx.s3, ctx.emu.bucket, outputPrefix, jobId)
  const rec = records[11]
  const line = out.records.find((r) => r.recordId === rec.recordId)
  const rt = await ctx.runtime.send(new ConverseCommand({ modelId: MODELS.claude, ...rec.modelInput }))
  t.deepEqual(line.modelOutput.output, rt.output)
  t.is(line.modelOutput.stopReason, rt.stopReason)
  t.deepEqual(line.modelOutput.usage, rt.usage)
})

// ---------------------------------------------------------------------------
// OpenAI-compatible endpoint

async function chat(body, init = {}) {
  const res = await fetch(joinUrl(shared.emu.endpoints.openai, '/chat/completions'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer test-key', ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { res, text, json }
}

test('chat completions answer with the OpenAI shape and the last user text', async (t) => {
  const { res, json } = await chat({
    model: MODELS.claude,
    messages: [
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'first turn' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: 'OpenAI question: what is 6 * 7?' },
    ],
    max_tokens: 100,
  })
  t.is(res.status, 200)
  t.regex(res.headers.get('content-type') ?? '', /application\/json/)
  t.is(typeof json.id, 'string')
  t.true(json.id.length > 0)
  t.is(json.object, 'chat.completion')
  t.true(Number.isInteger(json.created), 'created is unix seconds')
  t.is(typeof json.model, 'string')
  t.true(Array.isArray(json.choices) && json.choices.length === 1)
  const choice = json.choices[0]
  t.is(choice.index, 0)
  t.is(choice.message.role, 'assistant')
  t.is(typeof choice.message.content, 'string')
  t.true(choice.message.content.includes('OpenAI question: what is 6 * 7?'))
  t.is(choice.finish_reason, 'stop')
  t.true(isNonNegInt(json.usage.prompt_tokens))
  t.true(isNonNegInt(json.usage.completion_tokens))
  t.is(json.usage.total_tokens, json.usage.prompt_tokens + json.usage.completion_tokens)
})

test('chat completions with tools return tool_calls and finish_reason tool_calls', async (t) => {
  const { res, json } = await chat({
    model: MODELS.claude,
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Get the weather for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      },
    ],
  })
  t.is(res.status, 200)
  const choice = json.choices[0]
  t.is(choice.finish_reason, 'tool_calls')
  t.true(Array.isArray(choice.message.tool_calls) && choice.message.tool_calls.length > 0)
  const call = choice.message.tool_calls[0]
  t.is(typeof call.id, 'string')
  t.is(call.type, 'function')
  t.is(call.function.name, 'get_weather')
  t.is(typeof call.function.arguments, 'string', 'arguments is a JSON string')
  const args = JSON.parse(call.function.arguments)
  t.is(typeof args, 'object')
})

test('chat completions with [[error:429]] answer HTTP 429 with an OpenAI error object', async (t) => {
  const { res, json } = await chat({
    model: MODELS.claude,
    messages: [{ role: 'user', content: 'too fast [[error:429]]' }],
  })
  t.is(res.status, 429)
  t.truthy(json, 'the error body is JSON')
  t.is(typeof json.error, 'object')
  t.is(typeof json.error.message, 'string')
  t.true(json.error.message.length > 0)
  t.is(typeof json.error.type, 'string')
})

test('chat completions with [[error:500]] and [[error:400]] answer with those statuses', async (t) => {
  for (const code of [400, 500]) {
    const { res, json } = await chat({
      model: MODELS.claude,
      messages: [{ role: 'user', content: `fail [[error:${code}]]` }],
    })
    t.is(res.status, code)
    t.is(typeof json?.error?.message, 'string')
  }
})

test('chat completions with invalid JSON answer 400 with an OpenAI error object', async (t) => {
  const { res, json } = await chat('{"model": ')
  t.is(res.status, 400)
  t.is(typeof json?.error?.message, 'string')
  const again = await chat({ model: MODELS.claude, messages: [{ role: 'user', content: 'after the bad one' }] })
  t.is(again.res.status, 200)
})

test('GET /v1/models lists models in the OpenAI list shape', async (t) => {
  const res = await fetch(joinUrl(shared.emu.endpoints.openai, '/models'), {
    headers: { authorization: 'Bearer test-key' },
  })
  t.is(res.status, 200)
  const json = await res.json()
  t.is(json.object, 'list')
  t.true(Array.isArray(json.data) && json.data.length > 0)
  for (const m of json.data) {
    t.is(typeof m.id, 'string')
    t.is(m.object, 'model')
  }
  t.is(new Set(json.data.map((m) => m.id)).size, json.data.length, 'model ids are unique')
  // Every listed model can be used with chat completions.
  for (const m of json.data) {
    const { res: r, json: c } = await chat({ model: m.id, messages: [{ role: 'user', content: `Hello from ${m.id}` }] })
    t.is(r.status, 200, `chat with listed model ${m.id}`)
    t.true(c.choices[0].message.content.includes(`Hello from ${m.id}`))
  }
})
