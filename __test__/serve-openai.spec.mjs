// The OpenAI wire of `bedrock-batch-bridge serve` (docs/wires.md), called by the official `openai`
// npm SDK, unchanged, with only a base URL and a key: Chat Completions (plain, tools, streamed),
// Embeddings, Models, auth, the SDK's retries and a stream held past the client's idle timeout.
// serve runs as a child process on the emulator; what reached AWS is checked at the emulator (its
// jobs by a job name prefix of each test's own, their input files, its log of on-demand calls).

import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import test from 'ava'
import OpenAI from 'openai'
import { Agent, fetch as undiciFetch } from 'undici'

import {
  BatchInferenceClient,
  CLAUDE,
  MODELS,
  serveConfig,
  spawnServe,
  startEmu,
  tempDir,
  URL_LINE,
  unique,
  waitFor,
} from './helpers.mjs'
import {
  API_KEY,
  answerTo,
  jobInput,
  jobsEnded,
  jobsNamed,
  MAPPED,
  onDemandCalls,
  recordCounts,
  runPythonScript,
  startWireServe,
  wirePython,
} from './serve-wires.mjs'

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}

function openai(url, options = {}) {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: API_KEY, maxRetries: 0, ...options })
}

test('200 concurrent chat completions (plain, tools, streamed with usage) are answered as OpenAI objects from batch jobs', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { maxBatchSize: 100, batchTimeout: 1 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const plain = Array.from({ length: 70 }, (_, i) => `plain ${tag} ${i}: what is ${i} + ${i}?`)
  const tools = Array.from({ length: 70 }, (_, i) => `tools ${tag} ${i}: the weather in city ${i}? [[tool]]`)
  const streamed = Array.from({ length: 60 }, (_, i) => `stream ${tag} ${i}: what is ${i} * ${i}?`)

  const streamOne = async (prompt, i) => {
    const stream = await client.chat.completions.create({
      model: i % 2 ? MAPPED : CLAUDE,
      messages: [{ role: 'user', content: prompt }],
      max_tokens: 100,
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    return chunks
  }
  const [plainOut, toolOut, streamOut] = await Promise.all([
    Promise.all(
      plain.map((prompt, i) =>
        client.chat.completions.create({
          model: i % 2 ? MAPPED : CLAUDE,
          messages: [
            { role: 'system', content: 'You answer sums.' },
            { role: 'user', content: prompt },
          ],
          max_tokens: 100,
          temperature: 0.5,
        }),
      ),
    ),
    Promise.all(
      tools.map((prompt) =>
        client.chat.completions.create({
          model: MAPPED,
          messages: [{ role: 'user', content: prompt }],
          tools: [WEATHER_TOOL],
          max_completion_tokens: 200,
        }),
      ),
    ),
    Promise.all(streamed.map(streamOne)),
  ])

  // Plain: a chat.completion with the text to its own prompt, the model as asked, usage.
  plainOut.forEach((out, i) => {
    t.is(out.object, 'chat.completion')
    t.is(out.model, i % 2 ? MAPPED : CLAUDE)
    t.regex(out.id, /^chatcmpl-/)
    t.is(out.choices.length, 1)
    t.is(out.choices[0].message.role, 'assistant')
    t.is(out.choices[0].message.content, answerTo(plain[i]))
    t.is(out.choices[0].finish_reason, 'stop')
    t.true(out.usage.prompt_tokens > 0 && out.usage.completion_tokens > 0)
    t.is(out.usage.total_tokens, out.usage.prompt_tokens + out.usage.completion_tokens)
  })
  // Tools: one get_weather call each, its arguments JSON text with the required city.
  for (const out of toolOut) {
    const msg = out.choices[0].message
    t.is(out.choices[0].finish_reason, 'tool_calls')
    t.is(msg.tool_calls.length, 1)
    const [call] = msg.tool_calls
    t.is(call.type, 'function')
    t.is(call.function.name, 'get_weather')
    t.truthy(call.id)
    t.is(typeof JSON.parse(call.function.arguments).city, 'string')
    t.true(out.usage.prompt_tokens > 0)
  }
  // Streamed: a role chunk, content deltas adding up to the answer, a finish chunk, a usage chunk.
  streamOut.forEach((chunks, i) => {
    t.true(chunks.every((c) => c.object === 'chat.completion.chunk'))
    t.is(new Set(chunks.map((c) => c.id)).size, 1, 'one id for the whole stream')
    t.is(chunks[0].choices[0].delta.role, 'assistant')
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
    t.is(text, answerTo(streamed[i]))
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason)
    t.deepEqual(
      finish.map((c) => c.choices[0].finish_reason),
      ['stop'],
    )
    const last = chunks.at(-1)
    t.deepEqual(last.choices, [], 'the usage chunk comes last, with no choices')
    t.true(last.usage.prompt_tokens > 0 && last.usage.completion_tokens > 0)
  })

  // At the emulator: jobs only, each at least the minimum, every prompt in exactly one record.
  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  t.true(jobs.length >= 3, `${jobs.length} jobs`)
  for (const j of jobs) {
    t.is(j.status, 'Completed')
    t.true(j.totalRecordCount >= 100, `${j.jobArn}: ${j.totalRecordCount} records`)
  }
  const prompts = [...plain, ...tools, ...streamed]
  const { counts, total } = await recordCounts(s3, jobs, prompts)
  t.deepEqual(
    prompts.filter((p) => counts.get(p) !== 1).map((p) => `${p}: ${counts.get(p)}`),
    [],
    'one record per call',
  )
  t.is(total, 200 + stats.padded)
  t.is(stats.sentDirect, 0, 'nothing went on-demand')
  t.deepEqual(await onDemandCalls(emu), [], 'the emulator runtime got no call')
})

test('a conversation with a tool result and an image, stop sequences and flex map onto Converse; n: 2 is a BadRequestError naming n', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2 } })
  const client = openai(srv.url)
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex').toString('base64')
  const prompt = `the weather ${randomUUID()}`
  const out = await client.chat.completions.create({
    model: MAPPED,
    messages: [
      { role: 'developer', content: 'Be brief.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: prompt },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'Sunny, 21 C' },
    ],
    tools: [WEATHER_TOOL],
    stop: ['###'],
    top_p: 0.9,
    service_tier: 'flex',
  })
  t.is(out.choices[0].finish_reason, 'stop', 'a tool result is answered with text')
  t.regex(out.choices[0].message.content, /^This is the emulator's answer to:/)
  t.true(out.usage.prompt_tokens > 0)

  const err = await t.throwsAsync(
    client.chat.completions.create({ model: CLAUDE, messages: [{ role: 'user', content: 'two' }], n: 2 }),
    { instanceOf: OpenAI.BadRequestError },
  )
  t.is(err.status, 400)
  t.is(err.param, 'n')
  t.regex(err.message, /\bn must be 1/)
  const bad = await t.throwsAsync(
    client.chat.completions.create({
      model: CLAUDE,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }],
    }),
    { instanceOf: OpenAI.BadRequestError },
  )
  t.is(bad.param, 'messages[0].content[0].image_url.url')
  const tier = await t.throwsAsync(
    client.chat.completions.create({
      model: CLAUDE,
      messages: [{ role: 'user', content: 'x' }],
      service_tier: 'scale',
    }),
    { instanceOf: OpenAI.BadRequestError },
  )
  t.is(tier.param, 'service_tier')
  const json = await t.throwsAsync(
    client.chat.completions.create({
      model: CLAUDE,
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_object' },
    }),
    { instanceOf: OpenAI.BadRequestError },
  )
  t.is(json.param, 'response_format')
})

test('response_format json_schema goes in the Converse record as outputConfig (structured output)', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2 } })
  const client = openai(srv.url)
  const prompt = `json ${randomUUID()}`
  const schema = {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  }
  const out = await client.chat.completions.create({
    model: CLAUDE,
    messages: [{ role: 'user', content: prompt }],
    response_format: { type: 'json_schema', json_schema: { name: 'answer', description: 'a city', schema } },
  })
  t.is(out.choices[0].message.content, answerTo(prompt))
  const [job] = await jobsEnded(bedrock, srv.prefix, 1)
  const record = (await jobInput(s3, job)).find((r) => JSON.stringify(r.modelInput).includes(prompt))
  t.deepEqual(record.modelInput.outputConfig, {
    textFormat: {
      type: 'json_schema',
      structure: { jsonSchema: { schema: JSON.stringify(schema), name: 'answer', description: 'a city' } },
    },
  })
})

test('a streamed tool call comes as tool-call fragments (index, id, name, then arguments) and finish_reason tool_calls', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2 } })
  const client = openai(srv.url)
  const stream = await client.chat.completions.create({
    model: MAPPED,
    messages: [{ role: 'user', content: `the weather in Oslo? ${randomUUID()} [[tool]]` }],
    tools: [WEATHER_TOOL],
    stream: true,
  })
  const chunks = []
  for await (const c of stream) chunks.push(c)
  const fragments = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? [])
  t.true(fragments.length >= 2, `${fragments.length} fragments`)
  t.like(fragments[0], { index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } })
  t.truthy(fragments[0].id)
  t.true(fragments.every((f) => f.index === 0))
  const args = JSON.parse(fragments.map((f) => f.function?.arguments ?? '').join(''))
  t.is(typeof args.city, 'string')
  t.deepEqual(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean), ['tool_calls'])
  // The SDK's own accumulator reads the same call.
  const final = await client.chat.completions
    .stream({
      model: MAPPED,
      messages: [{ role: 'user', content: `the weather in Rome? ${randomUUID()} [[tool]]` }],
      tools: [WEATHER_TOOL],
    })
    .finalChatCompletion()
  t.is(final.choices[0].message.tool_calls[0].function.name, 'get_weather')
  t.is(typeof JSON.parse(final.choices[0].message.tool_calls[0].function.arguments).city, 'string')
})

test('a streamed call whose record fails after the head gets an error event: the SDK raises it; a record that failed for good is a BadRequestError not retried', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.3, maxAttempts: 1 } })
  const client = openai(srv.url, { maxRetries: 2 })
  const streamed = `stream fails ${randomUUID()} [[error:400]]`
  const plain = `plain fails ${randomUUID()} [[error:400]]`
  const readStream = async () => {
    const stream = await client.chat.completions.create({
      model: MAPPED,
      messages: [{ role: 'user', content: streamed }],
      stream: true,
    })
    for await (const _ of stream) {
      // no chunk comes before the error
    }
  }
  const [streamErr, plainErr] = await Promise.all([
    readStream().then(
      () => null,
      (e) => e,
    ),
    client.chat.completions.create({ model: MAPPED, messages: [{ role: 'user', content: plain }] }).then(
      () => null,
      (e) => e,
    ),
  ])
  t.true(streamErr instanceof OpenAI.APIError, String(streamErr))
  t.regex(streamErr.message, /ValidationException/)
  t.true(plainErr instanceof OpenAI.BadRequestError, String(plainErr))
  t.is(plainErr.code, 'ValidationException')
  t.is(plainErr.headers.get('x-should-retry'), 'false')
  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  const { counts } = await recordCounts(s3, jobs, [streamed, plain])
  t.deepEqual([...counts.values()], [1, 1], 'one record each: nothing was re-sent')
})

test('identical concurrent calls are one call (one record, one id); calls that differ by seed are two', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.3 } })
  const client = openai(srv.url)
  const same = `same ${randomUUID()}`
  const seeded = `seeded ${randomUUID()}`
  const body = (prompt, extra = {}) => ({ model: MAPPED, messages: [{ role: 'user', content: prompt }], ...extra })
  const outs = await Promise.all([
    client.chat.completions.create(body(same)),
    client.chat.completions.create(body(same)),
    client.chat.completions.create(body(seeded, { seed: 1 })),
    client.chat.completions.create(body(seeded, { seed: 2 })),
  ])
  t.is(outs[0].id, outs[1].id, 'the same call')
  t.not(outs[2].id, outs[3].id)
  for (const [i, out] of outs.entries()) t.is(out.choices[0].message.content, answerTo(i < 2 ? same : seeded))
  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  const { counts } = await recordCounts(s3, jobs, [same, seeded])
  t.is(counts.get(same), 1)
  t.is(counts.get(seeded), 2)
})

test('embeddings: Titan v2 as floats, as base64 (little-endian float32) and the SDK default, with dimensions; one record per input', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.5 } })
  const client = openai(srv.url)
  const tag = randomUUID().slice(0, 8)
  const inputs = [`first ${tag}`, `second ${tag}`, `third ${tag}`]
  const [floats, b64, sdkDefault] = await Promise.all([
    client.embeddings.create({ model: MODELS.titanEmbed, input: inputs, dimensions: 256, encoding_format: 'float' }),
    client.embeddings.create({ model: MODELS.titanEmbed, input: inputs, dimensions: 256, encoding_format: 'base64' }),
    client.embeddings.create({ model: MODELS.titanEmbed, input: inputs[0], dimensions: 256 }),
  ])
  t.is(floats.object, 'list')
  t.is(floats.model, MODELS.titanEmbed)
  t.deepEqual(
    floats.data.map((d) => [d.object, d.index, d.embedding.length]),
    inputs.map((_, i) => ['embedding', i, 256]),
  )
  t.true(floats.usage.prompt_tokens > 0)
  t.is(floats.usage.total_tokens, floats.usage.prompt_tokens)
  // base64: the same vectors, as float32.
  b64.data.forEach((d, i) => {
    t.is(typeof d.embedding, 'string')
    const buf = Buffer.from(d.embedding, 'base64')
    const decoded = Array.from({ length: buf.length / 4 }, (_, k) => buf.readFloatLE(k * 4))
    t.deepEqual(decoded, floats.data[i].embedding.map(Math.fround))
  })
  // The SDK asks for base64 by itself and decodes it to floats.
  t.deepEqual(sdkDefault.data[0].embedding, floats.data[0].embedding.map(Math.fround))

  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  let ours = 0
  for (const job of jobs) for (const r of await jobInput(s3, job)) if (r.modelInput.inputText?.includes(tag)) ours++
  t.is(ours, 7, 'one record per input string and call: 3 + 3 + 1')
  t.is(stats.sentDirect, 0)

  const err = await t.throwsAsync(client.embeddings.create({ model: CLAUDE, input: 'x' }), {
    instanceOf: OpenAI.BadRequestError,
  })
  t.is(err.param, 'model')
})

test('models list: the mapped names and their models; a wrong key is an AuthenticationError, as is none; x-api-key works', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startWireServe(t, emu)
  const client = openai(srv.url)
  const ids = []
  for await (const m of client.models.list()) ids.push(m)
  t.deepEqual(
    ids.map((m) => [m.id, m.object]),
    [
      [MAPPED, 'model'],
      [CLAUDE, 'model'],
    ],
  )
  t.true(ids.every((m) => Number.isInteger(m.created) && typeof m.owned_by === 'string'))
  t.is((await client.models.retrieve(MAPPED)).id, MAPPED)

  const wrong = openai(srv.url, { apiKey: 'not-the-key' })
  const err = await t.throwsAsync(
    wrong.chat.completions.create({ model: MAPPED, messages: [{ role: 'user', content: 'hi' }] }),
    { instanceOf: OpenAI.AuthenticationError },
  )
  t.is(err.status, 401)
  t.is(err.code, 'invalid_api_key')
  t.is(err.headers.get('x-should-retry'), 'false')
  const none = await fetch(`${srv.url}/v1/models`)
  t.is(none.status, 401)
  t.like(await none.json(), { error: { type: 'authentication_error', code: 'invalid_api_key' } })
  const byHeader = await fetch(`${srv.url}/v1/models`, { headers: { 'x-api-key': API_KEY } })
  t.is(byHeader.status, 200)
  // The Bedrock wire is not opened by an API key: it still needs no key on loopback, as before.
  const stats = await fetch(`${srv.url}/_bridge/stats`)
  t.is(stats.status, 200)
})

test('API keys from the config file and BEDROCK_BATCH_SERVE_API_KEYS are taken too; --host beyond loopback without --auth or --api-key refuses to start', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startWireServe(t, emu, {
    config: { apiKeys: ['test-dummy-config-key'] },
    env: { BEDROCK_BATCH_SERVE_API_KEYS: 'test-dummy-env-key-1, test-dummy-env-key-2' },
  })
  for (const key of [API_KEY, 'test-dummy-config-key', 'test-dummy-env-key-1', 'test-dummy-env-key-2']) {
    const res = await fetch(`${srv.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })
    t.is(res.status, 200, key)
  }
  const wrong = await fetch(`${srv.url}/v1/models`, { headers: { authorization: 'Bearer test-dummy-env-key' } })
  t.is(wrong.status, 401)

  const bare = join(srv.dir, 'no-keys.json')
  writeFileSync(bare, JSON.stringify(serveConfig(emu, srv.prefix)))
  const open = spawnServe(['--config', bare, '--host', '0.0.0.0', '--port', '0'])
  t.teardown(open.kill)
  const exit = await open.exited
  t.is(exit.code, 2)
  t.regex(exit.stderr, /--auth/)
  t.regex(exit.stderr, /--api-key/)
  t.notRegex(exit.stdout, URL_LINE, 'it never listened')
})

test('beyond loopback without an API key, the wires refuse every call (401 in each wire shape)', async (t) => {
  const require = createRequire(import.meta.url)
  const { WiresHandler } = require('../lib/wires/handler.js')
  const { Door } = require('../lib/door.js')
  const door = new Door({})
  const wires = new WiresHandler(door, { closed: true })
  t.teardown(() => wires.close())
  const call = (pathname, headers = {}) =>
    wires.handle({
      method: 'POST',
      pathname,
      header: (name) => headers[name],
      body: Buffer.from(JSON.stringify({ model: CLAUDE, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })),
    })
  const oa = await call('/v1/chat/completions', { authorization: `Bearer ${API_KEY}` })
  t.is(oa.status, 401)
  t.like(JSON.parse(oa.body), { error: { type: 'authentication_error', code: 'invalid_api_key' } })
  t.regex(JSON.parse(oa.body).error.message, /--api-key/)
  const an = await call('/v1/messages', { 'x-api-key': API_KEY, 'anthropic-version': '2023-06-01' })
  t.is(an.status, 401)
  t.like(JSON.parse(an.body), { type: 'error', error: { type: 'authentication_error' } })
  t.false(door.started, 'nothing reached the engine')
})

test('the SDK times out (2 s) and retries twice while the job runs: the retries join the call, one record, a later try answered', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t, { slowJobSeconds: 3 })
  // --ignore-client-timeout: the SDK's X-Stainless-Timeout (2 s) is not the call's deadline here. The
  // job answers 3 s after it starts at the earliest: after the first try timed out, and well within
  // the third (which ends after 2 + 0.4 + 2 + 0.75 + 2 s at the earliest).
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.3 }, args: ['--ignore-client-timeout'] })
  const sends = []
  const client = openai(srv.url, {
    fetch: (url, init) => {
      const headers = new Headers(init.headers)
      sends.push({ timeout: headers.get('x-stainless-timeout'), body: init.body })
      return fetch(url, init)
    },
  })
  const prompt = `slow ${randomUUID()} [[job:slow]]`
  const started = Date.now()
  const out = await client.chat.completions.create(
    { model: MAPPED, messages: [{ role: 'user', content: prompt }], max_tokens: 50 },
    { timeout: 2000, maxRetries: 2 },
  )
  t.is(out.choices[0].message.content, answerTo(prompt))
  t.deepEqual(
    sends.map((s) => s.timeout),
    sends.map(() => '2'),
    'each try told its timeout',
  )
  t.true(sends.length >= 2, `the SDK retried (${sends.length} tries in ${Date.now() - started} ms)`)
  t.is(new Set(sends.map((s) => s.body)).size, 1, 'each try sent the same body')
  t.log(`${sends.length} tries, answered after ${Date.now() - started} ms`)
  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  const { counts } = await recordCounts(s3, jobs, [prompt])
  t.is(counts.get(prompt), 1, 'one record for the call')
  t.is(stats.sentDirect, 0)
  t.deepEqual(await onDemandCalls(emu), [])
})

test('with --journal, a call re-sent to the next serve after a restart is answered from the first job: no second record', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t, { slowJobSeconds: 5 })
  const dir = tempDir(t)
  const prefix = unique('wirejournal')
  const journal = join(dir, 'j.db')
  const first = await startWireServe(t, emu, { prefix, dir, args: ['--journal', journal] })
  const prompt = `survives a restart ${randomUUID()} [[job:slow]]`
  const body = { model: MAPPED, messages: [{ role: 'user', content: prompt }], max_tokens: 50 }
  const pending = openai(first.url)
    .chat.completions.create(body)
    .then(
      () => 'answered',
      (e) => e.constructor.name,
    )
  const [job] = await waitFor('the job to run', async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    return jobs.length === 1 && jobs[0].status === 'InProgress' && jobs
  })
  first.child.kill('SIGTERM')
  t.is((await first.exited).code, 0)
  t.is(await pending, 'APIConnectionError', 'the first process did not answer')

  const second = await startWireServe(t, emu, { prefix, dir, args: ['--journal', journal] })
  const out = await openai(second.url).chat.completions.create(body)
  t.is(out.choices[0].message.content, answerTo(prompt))
  const jobs = await jobsEnded(bedrock, prefix)
  t.deepEqual(
    jobs.map((j) => j.jobArn),
    [job.jobArn],
    'no new job',
  )
  const { counts } = await recordCounts(s3, jobs, [prompt])
  t.is(counts.get(prompt), 1)
  t.deepEqual(await onDemandCalls(emu), [])
  // The journal keeps the call under the key derived from its route, API key and body.
  second.child.kill('SIGTERM')
  t.is((await second.exited).code, 0)
  const reader = new BatchInferenceClient({ ...serveConfig(emu, prefix), journal: { path: journal } })
  t.teardown(() => reader.destroy())
  const keys = []
  for await (const r of reader.results(job.jobArn))
    if (r.output && !r.idempotencyKey?.startsWith('pad')) keys.push(r.idempotencyKey)
  t.true(
    keys.some((k) => /^openai-chat:[0-9a-f]{64}$/.test(k ?? '')),
    `the call's key in the journal: ${JSON.stringify(keys.filter(Boolean).slice(0, 3))}`,
  )
})

test('X-Stainless-Timeout is a non-streaming call deadline: a job that runs past it has the call answered on-demand in time', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2, fallbackMargin: 2 } })
  const client = openai(srv.url, { maxRetries: 0 })
  const prompt = `deadline ${randomUUID()} [[job:slow]]`
  const started = Date.now()
  // The JS SDK sends X-Stainless-Timeout for a per-request timeout (the Python SDK and Anthropic's always).
  const out = await client.chat.completions.create(
    { model: CLAUDE, messages: [{ role: 'user', content: prompt }] },
    { timeout: 4000 },
  )
  t.is(out.choices[0].message.content, answerTo(prompt))
  t.true(Date.now() - started < 4000, 'answered within the client timeout')
  const calls = await onDemandCalls(emu)
  t.is(calls.length, 1, 'one on-demand call: the fallback')
  t.is((await srv.stats()).deadlineFallbacks, 1)
})

test('a streamed call held past the client idle timeout gets keep-alives and completes', async (t) => {
  const { emu } = await startEmu(t, { slowJobSeconds: 4 })
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2 }, config: { wireKeepAliveMs: 300 } })
  // undici's idle timer between body bytes (bodyTimeout) is 1.5 s; the job answers after 4 s.
  const dispatcher = new Agent({ bodyTimeout: 1500, headersTimeout: 1500 })
  t.teardown(() => dispatcher.close())
  let pings = 0
  const client = openai(srv.url, {
    timeout: 1500,
    fetch: async (url, init) => {
      const res = await undiciFetch(url, { ...init, dispatcher })
      // Counts the keep-alive comments on a copy of the body.
      const [mine, theirs] = res.body.tee()
      ;(async () => {
        const decoder = new TextDecoder()
        for await (const chunk of mine) pings += decoder.decode(chunk).split(': keep-alive\n\n').length - 1
      })()
      return new Response(theirs, { status: res.status, headers: res.headers })
    },
  })
  const prompt = `held stream ${randomUUID()} [[job:slow]]`
  const started = Date.now()
  const stream = await client.chat.completions.create({
    model: MAPPED,
    messages: [{ role: 'user', content: prompt }],
    stream: true,
  })
  t.true(Date.now() - started < 1500, 'the head came at once')
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  t.is(text, answerTo(prompt))
  t.true(Date.now() - started > 3000, `held ${Date.now() - started} ms`)
  t.true(pings >= 5, `${pings} keep-alives`)
})

test('the openai Python SDK (PyPI): 100 concurrent chat completions (plain, tools, streamed with usage) from jobs; n: 2 and a wrong key refused', async (t) => {
  const py = wirePython('OPENAI_PYTHON', 'openai')
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { maxBatchSize: 100, batchTimeout: 1 } })
  const tag = randomUUID().slice(0, 8)
  const plain = Array.from({ length: 40 }, (_, i) => `py plain ${tag} ${i}`)
  const tools = Array.from({ length: 30 }, (_, i) => `py tools ${tag} ${i} [[tool]]`)
  const streamed = Array.from({ length: 30 }, (_, i) => `py stream ${tag} ${i}`)
  const { results, refusals } = await runPythonScript(py, 'openai_calls.py', {
    baseUrl: srv.url,
    apiKey: API_KEY,
    model: MAPPED,
    plain,
    tools,
    streamed,
  })
  t.deepEqual(
    results.filter((r) => r.error).map((r) => `${r.kind} ${r.prompt}: ${JSON.stringify(r.error)}`),
    [],
  )
  for (const r of results.filter((x) => x.kind !== 'tools')) {
    t.is(r.text, answerTo(r.prompt))
    t.is(r.finish, 'stop')
    t.true(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0, JSON.stringify(r.usage))
  }
  for (const r of results.filter((x) => x.kind === 'tools')) {
    t.is(r.finish, 'tool_calls')
    t.deepEqual(
      r.calls.map((c) => [c.name, typeof c.arguments.city]),
      [['get_weather', 'string']],
    )
  }
  t.is(refusals.n.class, 'BadRequestError')
  t.is(refusals.n.param, 'n')
  t.like(refusals.auth, { class: 'AuthenticationError', status: 401 })

  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  for (const j of jobs) t.true(j.totalRecordCount >= 100)
  const prompts = [...plain, ...tools, ...streamed]
  const { counts } = await recordCounts(s3, jobs, prompts)
  t.deepEqual(
    prompts.filter((p) => counts.get(p) !== 1),
    [],
    'one record per call',
  )
  t.is(stats.sentDirect, 0)
  t.deepEqual(await onDemandCalls(emu), [])
})
