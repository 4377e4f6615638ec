// The parity suite for Converse and the streaming commands (issue 12): the same ConverseCommand,
// ConverseStreamCommand and InvokeModelWithResponseStreamCommand through the real
// BedrockRuntimeClient (pointed at the emulator's runtime), through our client in direct and batch
// modes and through the plugin give the same output keys, value types and values; streams give
// the same event sequence and the same concatenated text; faults the same exceptions.
//
// What legitimately differs: request ids and measured latencies; a batched stream is built from
// the whole answer, so its text is cut into different deltas than the runtime's (the sequences are
// compared with consecutive deltas of one block merged); a tool request in batch is answered by
// the model's native format, so its tool-use id is the native one.

import { createRequire } from 'node:module'
import test from 'ava'
import { CLAUDE, claudeBody, makeClient, ROLE_ARN, settle, startEmu, unique } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { BatchInferenceClient, batchPlugin } = require('../index.js')
const sdk = require('@aws-sdk/client-bedrock-runtime')

const PNG = Uint8Array.from(
  Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  ),
)
const TXT = new TextEncoder().encode('Quarterly report: revenue grew 12%, costs fell 3%.')

const WEATHER_TOOL = {
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
  toolChoice: { tool: { name: 'get_weather' } },
}

/** The cases, each a Converse input (without modelId). */
const CASES = {
  text: { messages: [{ role: 'user', content: [{ text: 'Parity text: what is 6 x 7?' }] }] },
  'system prompt and inference parameters': {
    system: [{ text: 'You answer in one sentence.' }],
    messages: [{ role: 'user', content: [{ text: 'Parity system: name three rivers.' }] }],
    inferenceConfig: { maxTokens: 64, temperature: 0.2, topP: 0.9, stopSequences: ['END'] },
  },
  'an image as bytes': {
    messages: [
      {
        role: 'user',
        content: [
          { text: 'Parity image: what is in this picture?' },
          { image: { format: 'png', source: { bytes: PNG } } },
        ],
      },
    ],
  },
  'a document': {
    messages: [
      {
        role: 'user',
        content: [
          { text: 'Parity document: summarise it.' },
          { document: { format: 'txt', name: 'report', source: { bytes: TXT } } },
        ],
      },
    ],
  },
}

/** The tool turn, and the next turn that gives the tool's result. */
const TOOL_TURN = {
  messages: [{ role: 'user', content: [{ text: 'Parity tool: what is the weather in Paris?' }] }],
  toolConfig: WEATHER_TOOL,
}
function resultTurn(toolUse) {
  return {
    messages: [
      ...TOOL_TURN.messages,
      { role: 'assistant', content: [{ toolUse }] },
      {
        role: 'user',
        content: [
          {
            toolResult: {
              toolUseId: toolUse.toolUseId,
              content: [{ json: { forecast: 'sunny', celsius: 21 } }],
              status: 'success',
            },
          },
        ],
      },
    ],
    toolConfig: { tools: WEATHER_TOOL.tools },
  }
}

function shape(obj) {
  return Object.entries(obj).map(([k, v]) => [
    k,
    v === null ? 'null' : v instanceof Uint8Array ? 'bytes' : Array.isArray(v) ? 'array' : typeof v,
  ])
}

/** An output without what each call has of its own (request ids, measured latency). */
function values(out) {
  const { $metadata, metrics, ...rest } = out
  return rest
}

function assertSameConverse(t, ours, real, label, { sameValues = true } = {}) {
  t.deepEqual(Object.keys(ours), Object.keys(real), `${label}: output keys and their order`)
  t.deepEqual(shape(ours), shape(real), `${label}: value types`)
  t.deepEqual(Object.keys(ours.metrics), Object.keys(real.metrics), `${label}: metrics keys`)
  t.deepEqual(Object.keys(ours.$metadata), Object.keys(real.$metadata), `${label}: $metadata keys`)
  t.deepEqual(shape(ours.$metadata), shape(real.$metadata), `${label}: $metadata value types`)
  if (sameValues) t.deepEqual(values(ours), values(real), `${label}: values`)
}

async function collect(iterable) {
  const out = []
  for await (const e of iterable) out.push(e)
  return out
}

/** A stream's event sequence, consecutive deltas of one block (and one kind) merged. */
function sequence(events) {
  const out = []
  for (const e of events) {
    const [k] = Object.keys(e)
    const step = k === 'contentBlockDelta' ? `${k}[${e[k].contentBlockIndex}]:${Object.keys(e[k].delta)[0]}` : k
    if (out.at(-1) !== step || k !== 'contentBlockDelta') out.push(step)
  }
  return out
}

/** What a consumer reassembles from a ConverseStream: text, tool input, stop reason, usage. */
function reassembled(events) {
  return {
    text: events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join(''),
    toolInput: events.map((e) => e.contentBlockDelta?.delta?.toolUse?.input ?? '').join(''),
    toolStart: events.find((e) => e.contentBlockStart)?.contentBlockStart.start.toolUse?.name,
    stopReason: events.find((e) => e.messageStop)?.messageStop.stopReason,
    usage: events.at(-1)?.metadata?.usage,
  }
}

function pluginHost(t, emu) {
  const host = new sdk.BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.bedrockRuntime,
    maxAttempts: 1,
  })
  const prefix = unique('parity-conv-plugin')
  const plugin = batchPlugin({
    client: host,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
      s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
      roleArn: ROLE_ARN,
      batchTimeout: 0.05,
      pollInterval: 0.05,
    },
  })
  host.middlewareStack.use(plugin)
  t.teardown(() => {
    plugin.destroy()
    host.destroy()
  })
  return { host, plugin }
}

/** The four paths: the real SDK, our client on-demand and batched, and the plugin. */
async function paths(t) {
  const ctx = await startEmu(t)
  const direct = new BatchInferenceClient({
    mode: 'direct',
    region: ctx.emu.region,
    credentials: ctx.emu.credentials,
    endpoints: ctx.emu.endpoints,
  })
  t.teardown(() => direct.destroy())
  const { client: batch } = makeClient(t, ctx.emu, { batch: { batchTimeout: 0.05, maxAttempts: 1 } })
  const { host, plugin } = pluginHost(t, ctx.emu)
  return { ...ctx, sdkClient: ctx.runtime, direct, batch, host, plugin }
}

test('ConverseCommand: text, a system prompt with inference parameters, an image, a document give the SDK output on every path', async (t) => {
  const { sdkClient, direct, batch, host, plugin } = await paths(t)
  for (const [label, input] of Object.entries(CASES)) {
    const cmd = () => new sdk.ConverseCommand({ modelId: CLAUDE, ...input })
    const real = await sdkClient.send(cmd())
    const [d, b, p] = await Promise.all([direct.send(cmd()), batch.send(cmd()), host.send(cmd())])
    assertSameConverse(t, d, real, `${label}, direct`)
    assertSameConverse(t, b, real, `${label}, batch`)
    assertSameConverse(t, p, real, `${label}, plugin`)
    t.regex(b.$metadata.requestId, /#R\d{10}$/, `${label}: batch answered`)
  }
  t.is(batch.stats().sentDirect, 0)
  t.is(plugin.stats().sentDirect, 0)
})

test('ConverseCommand with tools: the tool call and the next turn with its result, on every path; batch runs them as native records', async (t) => {
  const { sdkClient, direct, batch, host, plugin, bedrock } = await paths(t)
  const first = () => new sdk.ConverseCommand({ modelId: CLAUDE, ...TOOL_TURN })
  const real = await sdkClient.send(first())
  const [d, b, p] = await Promise.all([direct.send(first()), batch.send(first()), host.send(first())])
  t.is(real.stopReason, 'tool_use')
  for (const [label, ours] of [
    ['direct', d],
    ['batch', b],
    ['plugin', p],
  ]) {
    assertSameConverse(t, ours, real, `tool turn, ${label}`, { sameValues: label === 'direct' })
    t.is(ours.stopReason, 'tool_use', label)
    const use = ours.output.message.content.find((c) => c.toolUse).toolUse
    const realUse = real.output.message.content.find((c) => c.toolUse).toolUse
    t.is(use.name, 'get_weather', label)
    t.deepEqual(use.input, realUse.input, `${label}: the parsed input`)
    t.is(typeof use.toolUseId, 'string', label)
    t.deepEqual(ours.usage.inputTokens > 0, true, label)
  }
  // The next turn carries each path's own tool-use block back.
  const next = (out) =>
    new sdk.ConverseCommand({
      modelId: CLAUDE,
      ...resultTurn(out.output.message.content.find((c) => c.toolUse).toolUse),
    })
  const realNext = await sdkClient.send(next(real))
  const [dn, bn, pn] = await Promise.all([direct.send(next(d)), batch.send(next(b)), host.send(next(p))])
  for (const [label, ours] of [
    ['direct', dn],
    ['batch', bn],
    ['plugin', pn],
  ]) {
    assertSameConverse(t, ours, realNext, `result turn, ${label}`, { sameValues: false })
    t.is(ours.stopReason, 'end_turn', label)
    t.true(ours.output.message.content[0].text.includes('sunny'), `${label}: the answer uses the tool result`)
  }
  t.is(batch.stats().sentDirect, 0, 'tool requests were batched')
  t.is(plugin.stats().sentDirect, 0)
  const { listJobs, getJob } = await import('./helpers.mjs')
  const jobs = await Promise.all((await listJobs(bedrock)).map((j) => getJob(bedrock, j.jobArn)))
  t.true(
    jobs.some((j) => (j.modelInvocationType ?? 'InvokeModel') === 'InvokeModel'),
    'tool requests ran in InvokeModel-type jobs',
  )
})

test('ConverseStreamCommand: the same events and text on every path', async (t) => {
  const { sdkClient, direct, batch, host } = await paths(t)
  for (const [label, input] of Object.entries({ ...CASES, tool: TOOL_TURN })) {
    const cmd = () => new sdk.ConverseStreamCommand({ modelId: CLAUDE, ...input })
    const real = await collect((await sdkClient.send(cmd())).stream)
    const outs = await Promise.all([direct.send(cmd()), batch.send(cmd()), host.send(cmd())])
    for (const [i, path] of ['direct', 'batch', 'plugin'].entries()) {
      t.deepEqual(Object.keys(outs[i]).sort(), ['$metadata', 'stream'], `${label}, ${path}: output keys`)
      const events = await collect(outs[i].stream)
      t.deepEqual(sequence(events), sequence(real), `${label}, ${path}: event sequence`)
      if (path === 'direct')
        t.deepEqual(events.map(withoutLatency), real.map(withoutLatency), `${label}, direct: every event`)
      const [a, r] = [reassembled(events), reassembled(real)]
      if (label === 'tool') {
        t.is(a.toolStart, r.toolStart, `${label}, ${path}: tool name`)
        t.deepEqual(JSON.parse(a.toolInput), JSON.parse(r.toolInput), `${label}, ${path}: tool input`)
        t.is(a.stopReason, r.stopReason)
      } else {
        t.deepEqual(a, r, `${label}, ${path}: text, stop reason and usage`)
      }
    }
  }
})

function withoutLatency(e) {
  if (!e.metadata) return e
  const { metrics, ...rest } = e.metadata
  return { metadata: rest }
}

test('InvokeModelWithResponseStreamCommand: the same chunks and text on every path', async (t) => {
  const { sdkClient, direct, batch, host } = await paths(t)
  const body = JSON.stringify(claudeBody('Parity chunks: describe a lighthouse in two sentences.'))
  const cmd = () =>
    new sdk.InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, contentType: 'application/json', body })
  const realOut = await sdkClient.send(cmd())
  const real = await collect(realOut.body)
  const outs = await Promise.all([direct.send(cmd()), batch.send(cmd()), host.send(cmd())])
  const payloads = (events) => events.map((e) => JSON.parse(Buffer.from(e.chunk.bytes).toString('utf8')))
  const types = (ps) =>
    ps
      .map((p) => p.type)
      .filter((type, i, all) => type !== 'content_block_delta' || all[i - 1] !== 'content_block_delta')
  const text = (ps) =>
    ps
      .filter((p) => p.type === 'content_block_delta')
      .map((p) => p.delta.text)
      .join('')
  for (const [i, path] of ['direct', 'batch', 'plugin'].entries()) {
    t.deepEqual(Object.keys(outs[i]).sort(), Object.keys(realOut).sort(), `${path}: output keys`)
    t.is(outs[i].contentType, realOut.contentType, `${path}: contentType`)
    const events = await collect(outs[i].body)
    t.true(
      events.every((e) => Object.keys(e).join() === 'chunk' && e.chunk.bytes instanceof Uint8Array),
      `${path}: { chunk: { bytes } } events`,
    )
    const [ours, theirs] = [payloads(events), payloads(real)]
    t.deepEqual(types(ours), types(theirs), `${path}: chunk types`)
    t.is(text(ours), text(theirs), `${path}: text`)
    t.deepEqual(ours.at(-2).usage, theirs.at(-2).usage, `${path}: usage`)
    const [m, rm] = [ours.at(-1)['amazon-bedrock-invocationMetrics'], theirs.at(-1)['amazon-bedrock-invocationMetrics']]
    t.deepEqual(Object.keys(m), Object.keys(rm), `${path}: invocation metrics keys`)
    t.is(m.inputTokenCount, rm.inputTokenCount)
    t.is(m.outputTokenCount, rm.outputTokenCount)
  }
})

test('faults give the same exception names and classes on every path, for the plain and the streaming commands', async (t) => {
  const { sdkClient, direct, batch, host } = await paths(t)
  for (const [code, name] of [
    ['400', 'ValidationException'],
    ['429', 'ThrottlingException'],
    ['500', 'InternalServerException'],
  ]) {
    for (const Command of [sdk.ConverseCommand, sdk.ConverseStreamCommand]) {
      const input = {
        modelId: CLAUDE,
        messages: [{ role: 'user', content: [{ text: `fault ${code} [[error:${code}]]` }] }],
      }
      const real = await settle(sdkClient.send(new Command(input)))
      const outs = await Promise.all([direct, batch, host].map((c) => settle(c.send(new Command(input)))))
      t.false(real.ok)
      t.is(real.error.name, name)
      for (const [i, path] of ['direct', 'batch', 'plugin'].entries()) {
        const label = `${Command.name} ${code}, ${path}`
        t.false(outs[i].ok, label)
        t.is(outs[i].error.name, real.error.name, label)
        t.true(outs[i].error instanceof sdk[name], `${label}: instanceof the SDK's class`)
        t.is(outs[i].error.$fault, real.error.$fault, `${label}: $fault`)
        t.is(outs[i].error.$metadata.httpStatusCode, real.error.$metadata.httpStatusCode, `${label}: status`)
      }
    }
  }
})
