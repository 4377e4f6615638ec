// LangChain's ChatOpenAI (@langchain/openai) and ChatAnthropic (@langchain/anthropic), unchanged,
// pointed at `bedrock-batch-bridge serve` (docs/wires.md#langchain) with only a base URL and a key:
// a chain (prompt template | model | StringOutputParser) `.batch()`ed over 100 inputs is one batch
// job at the emulator, and a `.bindTools()` turn comes back as a parsed tool call, then its tool
// result is answered with text. serve runs as a child process on the emulator; what reached AWS
// is checked at the emulator (its jobs by each test's own job name prefix, their input records,
// its log of on-demand calls).

import { randomUUID } from 'node:crypto'
import { ChatAnthropic } from '@langchain/anthropic'
import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages'
import { StringOutputParser } from '@langchain/core/output_parsers'
import { ChatPromptTemplate } from '@langchain/core/prompts'
import { ChatOpenAI } from '@langchain/openai'
import test from 'ava'
import { Agent, fetch } from 'undici'

import { CLAUDE, startEmu } from './helpers.mjs'
import {
  API_KEY,
  answerTo,
  jobInput,
  jobsEnded,
  MAPPED,
  onDemandCalls,
  recordCounts,
  startWireServe,
} from './serve-wires.mjs'

const INPUTS = 100

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}

/** An undici Agent without undici's own 5-minute limits, closed in teardown (docs/wires.md#langchain). */
function heldAgent(t) {
  const dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0 })
  t.teardown(() => dispatcher.close())
  return dispatcher
}

/** ChatOpenAI on serve's OpenAI wire (`/v1`) as docs/wires.md#langchain configures it. */
function chatOpenAI(t, url) {
  return new ChatOpenAI({
    model: MAPPED,
    apiKey: API_KEY,
    maxTokens: 200,
    timeout: 86_400_000,
    configuration: { baseURL: `${url}/v1`, fetch, fetchOptions: { dispatcher: heldAgent(t) } },
  })
}

/** ChatAnthropic on serve's Anthropic wire as docs/wires.md#langchain configures it. */
function chatAnthropic(t, url) {
  return new ChatAnthropic({
    model: MAPPED,
    apiKey: API_KEY,
    anthropicApiUrl: url,
    maxTokens: 200,
    clientOptions: { timeout: 86_400_000, fetch, fetchOptions: { dispatcher: heldAgent(t) } },
  })
}

const prompt = ChatPromptTemplate.fromMessages([
  ['system', 'You answer in one short sentence.'],
  ['human', 'Question {n} ({tag}): what is {n} + {n}?'],
])
const questionOf = ({ n, tag }) => `Question ${n} (${tag}): what is ${n} + ${n}?`

/**
 * `prompt | model | StringOutputParser` batched over 100 inputs: every output is the emulator's
 * answer to its own question; at the emulator, one job of exactly the 100 questions (serve's
 * `maxBatchSize` 100 flushes it full, its `batchTimeout` is long enough never to split it), no
 * padding, nothing on-demand.
 */
async function chainMakesOneJob(t, makeModel) {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { maxBatchSize: INPUTS, batchTimeout: 60 } })
  const tag = randomUUID().slice(0, 8)
  const inputs = Array.from({ length: INPUTS }, (_, n) => ({ n, tag }))
  const chain = prompt.pipe(makeModel(t, srv.url)).pipe(new StringOutputParser())

  const outputs = await chain.batch(inputs)

  t.is(outputs.length, INPUTS)
  outputs.forEach((out, i) => {
    t.is(typeof out, 'string')
    t.true(out.includes(questionOf(inputs[i])), `output ${i} answers its own input: ${out}`)
    t.is(out, answerTo(questionOf(inputs[i])))
  })

  const stats = await srv.stats()
  t.is(stats.jobs.length, 1, 'one job')
  const jobs = await jobsEnded(bedrock, srv.prefix, 1)
  t.is(jobs[0].status, 'Completed')
  t.is(jobs[0].totalRecordCount, INPUTS)
  const questions = inputs.map(questionOf)
  const { counts, total } = await recordCounts(s3, jobs, questions)
  t.deepEqual(
    questions.filter((q) => counts.get(q) !== 1).map((q) => `${q}: ${counts.get(q)}`),
    [],
    'one record per input',
  )
  t.is(total, INPUTS)
  t.is(stats.padded, 0)
  t.is(stats.sentDirect, 0, 'nothing went on-demand')
  t.deepEqual(await onDemandCalls(emu), [], 'the emulator runtime got no call')
  return { jobs, records: await jobInput(s3, jobs[0]) }
}

test('ChatOpenAI: a chain .batch()ed over 100 inputs is one batch job, every output its own answer', async (t) => {
  const { records } = await chainMakesOneJob(t, chatOpenAI)
  // A Chat Completions call is a Converse record: LangChain's system message is its `system`.
  t.deepEqual(records[0].modelInput.system, [{ text: 'You answer in one short sentence.' }])
})

test('ChatAnthropic: a chain .batch()ed over 100 inputs is one batch job, every output its own answer', async (t) => {
  const { records } = await chainMakesOneJob(t, chatAnthropic)
  // A Messages call is Claude's native record: LangChain's system message is its `system`.
  t.is(records[0].modelInput.anthropic_version, 'bedrock-2023-05-31')
  t.is(records[0].modelInput.system, 'You answer in one short sentence.')
})

/**
 * One `.bindTools()` turn on `model`: the answer to a question that triggers the emulator's tool
 * call is an AIMessage whose `tool_calls` LangChain parsed (name, args, id); sending back the tool
 * result is answered with text. Resolves with the question asked and the tool result sent.
 */
async function toolTurn(t, label, model, bindOptions) {
  const city = `${label} city ${randomUUID().slice(0, 8)}`
  const question = `${city} [[tool]]`
  const bound = model.bindTools([WEATHER_TOOL], bindOptions)
  const first = await bound.invoke([new HumanMessage(question)])
  t.true(first instanceof AIMessage, `${label}: an AIMessage`)
  t.is(first.tool_calls.length, 1, `${label}: one tool call`)
  const [call] = first.tool_calls
  t.is(call.name, 'get_weather')
  t.deepEqual(call.args, { city }, `${label}: the arguments parsed, the emulator's city being the question`)
  t.is(typeof call.id, 'string')
  t.true(call.id.length > 0)
  t.deepEqual(first.invalid_tool_calls ?? [], [])

  const result = `Sunny in ${city}, 21 C`
  const second = await bound.invoke([
    new HumanMessage(question),
    first,
    new ToolMessage({ content: result, tool_call_id: call.id }),
  ])
  t.deepEqual(second.tool_calls ?? [], [], `${label}: a tool result is answered with text`)
  t.regex(second.text, /^This is the emulator's answer to:/)
  return { question, result }
}

test('.bindTools() on ChatOpenAI and ChatAnthropic: the tool call comes back parsed, its result answered, all from batch jobs', async (t) => {
  const { emu, bedrock, s3 } = await startEmu(t)
  const srv = await startWireServe(t, emu, { batch: { batchTimeout: 0.2 } })
  const turns = await Promise.all([
    // With the members LangChain sends for its caching and strict-tool options, which the wire
    // accepts and leaves out (docs/wires.md).
    toolTurn(
      t,
      'openai',
      new ChatOpenAI({
        model: MAPPED,
        apiKey: API_KEY,
        configuration: { baseURL: `${srv.url}/v1` },
        promptCacheKey: 'langchain-tools',
        promptCacheRetention: '24h',
      }),
      { strict: true, parallel_tool_calls: false },
    ),
    // LangChain's defaults (max_tokens 4096), a Bedrock model id as the model.
    toolTurn(t, 'anthropic', new ChatAnthropic({ model: CLAUDE, apiKey: API_KEY, anthropicApiUrl: srv.url })),
  ])

  const stats = await srv.stats()
  const jobs = await jobsEnded(bedrock, srv.prefix, stats.jobs.length)
  t.true(jobs.length >= 2, `${jobs.length} jobs`)
  for (const j of jobs) t.is(j.status, 'Completed')
  const records = (await Promise.all(jobs.map((j) => jobInput(s3, j)))).flat()
  // Each question went as a record with the tool offered, twice: the call, then with its result.
  for (const { question, result } of turns) {
    const withQ = records.filter((r) => JSON.stringify(r.modelInput.messages?.[0] ?? null).includes(question))
    t.is(withQ.length, 2, `${question}: two records`)
    for (const r of withQ) t.regex(JSON.stringify(r.modelInput.tools ?? r.modelInput.toolConfig), /get_weather/)
    t.is(withQ.filter((r) => JSON.stringify(r.modelInput.messages).includes(result)).length, 1, 'the tool result')
  }
  const { total } = await recordCounts(s3, jobs, [])
  t.is(total, 4 + stats.padded)
  t.is(stats.sentDirect, 0, 'nothing went on-demand')
  t.deepEqual(await onDemandCalls(emu), [], 'the emulator runtime got no call')
})
