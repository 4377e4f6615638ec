// The Anthropic wire of `bedrock-batch-bridge serve` (docs/wires.md), called by the official
// `@anthropic-ai/sdk` npm SDK, unchanged, with only a base URL and a key: Messages with and
// without `stream`, tools, auth, errors in Anthropic's shapes and statuses, keep-alive pings.
// serve runs as a child process on the emulator; what reached AWS is checked at the emulator.

import { randomUUID } from 'node:crypto'
import Anthropic from '@anthropic-ai/sdk'
import test from 'ava'

import { CLAUDE, startEmu } from './helpers.mjs'
import {
  API_KEY,
  answerTo,
  jobInput,
  jobsEnded,
  MAPPED,
  onDemandCalls,
  recordCounts,
  runPythonScript,
  startWireServe,
  wirePython,
} from './serve-wires.mjs'

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
}

function anthropic(url, options = {}) {
  return new Anthropic({ baseURL: url, apiKey: API_KEY, maxRetries: 0, ...options })
}

test('200 concurrent messages.create (plain, tools, streamed) are answered as Anthropic messages from batch jobs', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { maxBatchSize: 100, batchTimeout: 1 } })
  const client = anthropic(srv.url)
  const tag = randomUUID().slice(0, 8)
  const plain = Array.from({ length: 80 }, (_, i) => `plain ${tag} ${i}: what is ${i} + ${i}?`)
  const tools = Array.from({ length: 40 }, (_, i) => `tools ${tag} ${i}: the weather in city ${i}? [[tool]]`)
  const streamed = Array.from({ length: 80 }, (_, i) => `stream ${tag} ${i}: what is ${i} * ${i}?`)

  const streamOne = async (prompt, i) => {
    const stream = await client.messages.create({
      model: i % 2 ? MAPPED : CLAUDE,
      max_tokens: 100,
      messages: [{ role: 'user', content: prompt }],
      stream: true,
    })
    const events = []
    for await (const event of stream) events.push(event)
    return events
  }
  const [plainOut, toolOut, streamOut] = await Promise.all([
    Promise.all(
      plain.map((prompt, i) =>
        client.messages.create({
          model: i % 2 ? MAPPED : CLAUDE,
          max_tokens: 100,
          system: 'You answer sums.',
          messages: [{ role: 'user', content: prompt }],
        }),
      ),
    ),
    Promise.all(
      tools.map((prompt) =>
        client.messages.create({
          model: MAPPED,
          max_tokens: 200,
          tools: [WEATHER_TOOL],
          messages: [{ role: 'user', content: prompt }],
        }),
      ),
    ),
    Promise.all(streamed.map(streamOne)),
  ])

  plainOut.forEach((out, i) => {
    t.is(out.type, 'message')
    t.is(out.role, 'assistant')
    t.is(out.model, i % 2 ? MAPPED : CLAUDE, 'the model as the caller named it')
    t.deepEqual(out.content, [{ type: 'text', text: answerTo(plain[i]) }])
    t.is(out.stop_reason, 'end_turn')
    t.true(out.usage.input_tokens > 0 && out.usage.output_tokens > 0)
  })
  for (const out of toolOut) {
    t.is(out.stop_reason, 'tool_use')
    const uses = out.content.filter((b) => b.type === 'tool_use')
    t.is(uses.length, 1)
    t.is(uses[0].name, 'get_weather')
    t.is(typeof uses[0].input.city, 'string')
  }
  streamOut.forEach((events, i) => {
    const types = events.map((e) => e.type)
    t.is(types[0], 'message_start')
    t.is(types.at(-1), 'message_stop')
    t.true(types.includes('message_delta'))
    t.is(events[0].message.model, i % 2 ? MAPPED : CLAUDE)
    t.false('amazon-bedrock-invocationMetrics' in events.at(-1), "Bedrock's own metrics are not Anthropic's")
    const text = events
      .filter((e) => e.type === 'content_block_delta')
      .map((e) => e.delta.text)
      .join('')
    t.is(text, answerTo(streamed[i]))
    const delta = events.find((e) => e.type === 'message_delta')
    t.is(delta.delta.stop_reason, 'end_turn')
    t.true(delta.usage.output_tokens > 0)
  })

  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  t.true(jobs.length >= 2, `${jobs.length} jobs`)
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
  // The records are Claude's native body: Bedrock's anthropic_version, no model, no stream.
  const input = await jobInput(s3, jobs[0])
  const ours = input.find((r) => JSON.stringify(r.modelInput).includes(tag))
  t.is(ours.modelInput.anthropic_version, 'bedrock-2023-05-31')
  t.false('model' in ours.modelInput)
  t.false('stream' in ours.modelInput)
})

test('anthropic-beta goes as anthropic_beta; a wrong key is an AuthenticationError; a record that failed for good is a 400 not retried; an unavailable model is 529', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.3, maxAttempts: 1 } })
  const tag = randomUUID().slice(0, 8)
  const client = anthropic(srv.url, { maxRetries: 2 })
  const beta = `beta ${tag}`
  const failed = `failed ${tag} [[error:400]]`
  const overloaded = `overloaded ${tag} [[error:503]]`
  const [betaOut, badErr, overErr] = await Promise.all([
    client.messages.create(
      { model: MAPPED, max_tokens: 50, messages: [{ role: 'user', content: beta }] },
      { headers: { 'anthropic-beta': 'token-efficient-tools-2025-02-19' } },
    ),
    client.messages
      .create({ model: MAPPED, max_tokens: 50, messages: [{ role: 'user', content: failed }] })
      .catch((e) => e),
    anthropic(srv.url)
      .messages.create({ model: MAPPED, max_tokens: 50, messages: [{ role: 'user', content: overloaded }] })
      .catch((e) => e),
  ])
  t.deepEqual(betaOut.content, [{ type: 'text', text: answerTo(beta) }])
  t.true(badErr instanceof Anthropic.BadRequestError, String(badErr))
  t.is(badErr.status, 400)
  t.is(badErr.error.type, 'error')
  t.is(badErr.error.error.type, 'invalid_request_error')
  t.is(badErr.headers.get('x-should-retry'), 'false')
  t.true(overErr instanceof Anthropic.InternalServerError, String(overErr))
  t.is(overErr.status, 529)
  t.is(overErr.error.error.type, 'overloaded_error')

  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  const { counts } = await recordCounts(s3, jobs, [beta, failed])
  t.is(counts.get(failed), 1, 'the failed call made one record: the SDK did not re-send it')
  let betaRecord
  for (const j of jobs)
    for (const r of await jobInput(s3, j)) if (JSON.stringify(r.modelInput).includes(beta)) betaRecord = r.modelInput
  t.deepEqual(betaRecord.anthropic_beta, ['token-efficient-tools-2025-02-19'])

  const wrong = anthropic(srv.url, { apiKey: 'not-the-key' })
  const auth = await t.throwsAsync(
    wrong.messages.create({ model: MAPPED, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
    { instanceOf: Anthropic.AuthenticationError },
  )
  t.is(auth.status, 401)
  t.is(auth.error.error.type, 'authentication_error')
  const noVersion = await fetch(`${srv.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MAPPED, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
  })
  t.is(noVersion.status, 400)
  t.like(await noVersion.json(), { type: 'error', error: { type: 'invalid_request_error' } })
  const noMax = await t.throwsAsync(
    client.messages.create({ model: MAPPED, messages: [{ role: 'user', content: 'hi' }] }),
    { instanceOf: Anthropic.BadRequestError },
  )
  t.regex(noMax.message, /max_tokens/)
})

test('a streamed message held while its job runs gets ping events and completes', async (t) => {
  const { emu } = await startEmu(t, { slowJobSeconds: 3 })
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2 }, config: { wireKeepAliveMs: 300 } })
  let pings = 0
  const client = anthropic(srv.url, {
    fetch: async (url, init) => {
      const res = await fetch(url, init)
      const [mine, theirs] = res.body.tee()
      ;(async () => {
        const decoder = new TextDecoder()
        for await (const chunk of mine) pings += decoder.decode(chunk).split('event: ping\n').length - 1
      })()
      return new Response(theirs, { status: res.status, headers: res.headers })
    },
  })
  const prompt = `held ${randomUUID()} [[job:slow]]`
  const started = Date.now()
  const stream = client.messages.stream({
    model: MAPPED,
    max_tokens: 50,
    messages: [{ role: 'user', content: prompt }],
  })
  const message = await stream.finalMessage()
  t.deepEqual(message.content, [{ type: 'text', text: answerTo(prompt) }])
  t.is(message.model, MAPPED)
  t.true(Date.now() - started > 2500, `held ${Date.now() - started} ms`)
  t.true(pings >= 5, `${pings} pings`)
})

test('the anthropic Python SDK (PyPI): 100 concurrent messages.create and messages.stream from jobs; a wrong key refused', async (t) => {
  const py = wirePython('ANTHROPIC_PYTHON', 'anthropic')
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { maxBatchSize: 100, batchTimeout: 1 } })
  const tag = randomUUID().slice(0, 8)
  const plain = Array.from({ length: 50 }, (_, i) => `py plain ${tag} ${i}`)
  const streamed = Array.from({ length: 50 }, (_, i) => `py stream ${tag} ${i}`)
  const { results, refusals } = await runPythonScript(py, 'anthropic_calls.py', {
    baseUrl: srv.url,
    apiKey: API_KEY,
    model: MAPPED,
    plain,
    streamed,
  })
  t.deepEqual(
    results.filter((r) => r.error).map((r) => `${r.kind} ${r.prompt}: ${JSON.stringify(r.error)}`),
    [],
  )
  for (const r of results) {
    t.is(r.text, answerTo(r.prompt))
    t.is(r.model, MAPPED)
    t.is(r.stop, 'end_turn')
    t.true(r.usage.input > 0 && r.usage.output > 0)
  }
  t.like(refusals.auth, { class: 'AuthenticationError', status: 401 })
  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  for (const j of jobs) t.true(j.totalRecordCount >= 100)
  const prompts = [...plain, ...streamed]
  const { counts } = await recordCounts(s3, jobs, prompts)
  t.deepEqual(
    prompts.filter((p) => counts.get(p) !== 1),
    [],
    'one record per call',
  )
  t.is(stats.sentDirect, 0)
  t.deepEqual(await onDemandCalls(emu), [])
})
