// Fuzzing of serve's request parsers (issue 23), shared by bench/fuzz-wires.mjs (runs each target
// for a chosen time) and wire-fuzz.spec.mjs (replays the corpus and a short seeded pass in CI).
//
// Four targets, each a request `{ method, path, headers, body }` answered in process (no server,
// no socket) by the handlers serve uses: `runtime` (the Bedrock runtime wire, lib/wire.js),
// `openai` and `anthropic` (the OpenAI and Anthropic wires, lib/wires/handler.js) and `multipart`
// (`POST /v1/files`, its multipart/form-data parser). The door behind them is a real one in dry-run
// mode: every call the wires let through goes into the engine, which validates it and holds it;
// `plan()` then ends the calls it holds with DryRunException, so a well-formed request is seen to
// reach the door and nothing is ever sent.
//
// Invariants per input: the handler resolves (never throws or rejects) within TIME_LIMIT_MS; an
// error is a 4xx in its wire's own shape (runtime: `x-amzn-errortype` naming one of the package's
// exceptions and a JSON `message`; OpenAI: `{ error: { message, type, param, code } }`; Anthropic:
// `{ type: "error", error: { type, message } }`), never a 5xx or the message of an untyped error;
// a well-formed request reaches the door (`expect: "door"`), a malformed one is refused (`expect:
// "refused"`), and a multipart body built from parts parses back to the same file (`expect: "ok"`).
//
// Inputs are stored as JSON files: `{ method, path, headers, body | bodyBase64, expect?, file? }`.

import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'

const require = createRequire(import.meta.url)
const { Door } = require('../lib/door.js')
const { WireHandler } = require('../lib/wire.js')
const { WiresHandler } = require('../lib/wires/handler.js')
const { exceptionNames } = require('../lib/errors.js')
const { startEmulator } = require('../index.js')

export const CORPUS = fileURLToPath(new URL('./fixtures/fuzz-wires/', import.meta.url))
export const TARGETS = ['runtime', 'openai', 'anthropic', 'multipart']

/** How long one input may take to be answered (after the door's plan has ended what it held). */
export const TIME_LIMIT_MS = 5000

const EXCEPTIONS = new Set(exceptionNames.map((n) => n.name))
const CLAUDE = 'anthropic.claude-3-haiku-20240307-v1:0'
const NOVA = 'amazon.nova-lite-v1:0'
const TITAN_EMBED = 'amazon.titan-embed-text-v2:0'

// ---------------------------------------------------------------------------
// Inputs as files

/** A request as stored: the body as text when it is UTF-8 that round-trips, else as base64. */
export function encodeInput(req) {
  const { body, ...rest } = req
  const bytes = Buffer.from(body ?? '')
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes)
    ? { ...rest, body: text }
    : { ...rest, bodyBase64: bytes.toString('base64') }
}

/** A stored request as the handler takes it. */
export function decodeInput(stored) {
  const body =
    stored.bodyBase64 !== undefined ? Buffer.from(stored.bodyBase64, 'base64') : Buffer.from(stored.body ?? '', 'utf8')
  return {
    method: stored.method,
    path: stored.path,
    headers: stored.headers ?? {},
    body,
    expect: stored.expect,
    upload: stored.upload,
    file: stored.file,
  }
}

/** Every stored input of a target: `[{ name, input }]`. */
export function corpus(target) {
  const dir = join(CORPUS, target)
  let names
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'))
  } catch {
    return []
  }
  return names.sort().map((name) => ({ name, input: decodeInput(JSON.parse(readFileSync(join(dir, name), 'utf8'))) }))
}

/** Writes a failing input to its target's folder (named by its hash): the file's path. */
export function saveFailure(target, input, problem) {
  const dir = join(CORPUS, target)
  mkdirSync(dir, { recursive: true })
  const stored = { ...encodeInput(input), problem }
  delete stored.expect
  const hash = createHash('sha256')
    .update(JSON.stringify(encodeInput(input)))
    .digest('hex')
    .slice(0, 12)
  const file = join(dir, `crash-${hash}.json`)
  writeFileSync(file, `${JSON.stringify(stored, null, 2)}\n`)
  return file
}

// ---------------------------------------------------------------------------
// The handlers, over a dry-run door

/** A dry-run door's options over the emulator `emu`: nothing is sent, and what the plan reads (CountTokens) is local. */
function doorOptions(emu) {
  return {
    region: emu.region,
    credentials: { ...emu.credentials },
    endpoints: emu.endpoints,
    dryRun: true,
    batch: {
      s3InputUri: `s3://${emu.bucket}/fuzz/in/`,
      s3OutputUri: `s3://${emu.bucket}/fuzz/out/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchInferenceRole',
      batchTimeout: 3600,
      minBatchSize: 100,
      maxConcurrentJobs: 20,
    },
  }
}

/**
 * The runtime handler and the OpenAI/Anthropic handler over one dry-run door on the built-in
 * emulator, renewed every `renewEvery` inputs (a long run keeps no more than that many files and
 * batches). `Harness.start()` starts the emulator and warms the door; `close()` stops both.
 */
export class Harness {
  static async start(options) {
    const emu = await startEmulator({ profile: 'fast' })
    const harness = new Harness(emu, options)
    await harness.warm()
    return harness
  }

  constructor(emu, { renewEvery = 2000 } = {}) {
    this._emu = emu
    this._renewEvery = renewEvery
    this._count = 0
    this._make()
  }

  _make() {
    this.door = new Door(doorOptions(this._emu))
    this.runtime = new WireHandler(this.door)
    this.wires = new WiresHandler(this.door, { modelMap: new Map([['fuzz-chat', NOVA]]) })
  }

  /** Starts the door's engine (its first plan takes the longest). */
  async warm() {
    await this.door.plan()
  }

  async _renew() {
    this._closeHandlers()
    this._make()
    await this.warm()
  }

  _closeHandlers() {
    this.runtime.close()
    this.wires.close()
    this.door.destroy()
  }

  async close() {
    this._closeHandlers()
    await this._emu.stop()
  }

  /**
   * Answers one input with its target's handler: `{ out }` (`out.body` read into a Buffer, a
   * stream's frames included) or `{ threw }`, or `{ hung }` past TIME_LIMIT_MS.
   */
  async answer(target, input) {
    if (++this._count % this._renewEvery === 0) await this._renew()
    const headers = Object.fromEntries(Object.entries(input.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
    const header = (name) => headers[name]
    const [pathname, search = ''] = input.path.split('?')
    let body = input.body
    if (input.upload !== undefined) {
      // A batch's input file: uploaded first, its id in the body where it says $UPLOAD.
      const boundary = 'fuzz-upload-boundary-0123456789'
      const up = await this.wires.handle({
        method: 'POST',
        pathname: '/v1/files',
        query: new URLSearchParams(),
        header: (name) => (name === 'content-type' ? `multipart/form-data; boundary=${boundary}` : undefined),
        body: multipart(boundary, [
          { name: 'purpose', bytes: Buffer.from('batch') },
          { name: 'file', filename: 'batch.jsonl', bytes: Buffer.from(input.upload) },
        ]),
      })
      if (up.status !== 200) return { threw: new Error(`the batch's input file was refused: ${up.body}`) }
      body = Buffer.from(body.toString('utf8').replaceAll('$UPLOAD', JSON.parse(up.body).id))
    }
    const request = { method: input.method, pathname, header, body }
    const handler = target === 'runtime' ? this.runtime : this.wires
    if (target !== 'runtime') request.query = new URLSearchParams(search)
    let timer
    const limit = new Promise((resolve) => {
      timer = setTimeout(resolve, TIME_LIMIT_MS, { hung: true })
    })
    const run = (async () => {
      let pending
      try {
        pending = handler.handle(request)
      } catch (err) {
        return { threw: err }
      }
      // The calls the door holds end now (a refused one has ended already).
      const plan = this.door.plan().catch(() => {})
      try {
        const out = await pending
        await plan
        if (out && !Buffer.isBuffer(out.body)) {
          const chunks = []
          for await (const c of out.body) {
            chunks.push(Buffer.from(c))
            // A stream that is not done: end its keep-alives by planning again.
            if (chunks.length % 8 === 0) await this.door.plan().catch(() => {})
          }
          out.body = Buffer.concat(chunks)
          out.streamed = true
        }
        return { out }
      } catch (err) {
        return { threw: err }
      }
    })()
    try {
      return await Promise.race([run, limit])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The answer to a request made by the checks (the content of an uploaded file). */
  async get(path) {
    return this.wires.handle({
      method: 'GET',
      pathname: path,
      query: new URLSearchParams(),
      header: () => undefined,
      body: Buffer.alloc(0),
    })
  }
}

// ---------------------------------------------------------------------------
// Checks

const jsonOf = (buf) => {
  try {
    return JSON.parse(buf.toString('utf8'))
  } catch {
    return undefined
  }
}

/** Why a runtime answer breaks the invariants, or null. */
function runtimeProblem(out) {
  if (out === null) return null // not a runtime request: serve answers UnknownOperationException
  const type = out.headers?.['x-amzn-errortype']
  if (out.status === 200) return type ? 'a 200 with x-amzn-errortype' : null
  if (!Number.isInteger(out.status) || out.status < 400 || out.status >= 500) return `status ${out.status}`
  if (typeof type !== 'string') return 'an error without x-amzn-errortype'
  const name = type.split(':')[0]
  if (!EXCEPTIONS.has(name)) return `x-amzn-errortype ${name} is not one of the package's exceptions`
  const body = jsonOf(out.body)
  if (typeof body?.message !== 'string') return 'an error body without a JSON message'
  return null
}

/** Why an OpenAI answer breaks the invariants, or null. */
function openaiProblem(out) {
  if (out.status === 200) return null
  if (!Number.isInteger(out.status) || out.status < 400 || out.status >= 500) return `status ${out.status}`
  const body = jsonOf(out.body)
  const e = body?.error
  if (!e || typeof e.message !== 'string' || typeof e.type !== 'string' || !('param' in e) || !('code' in e))
    return `not OpenAI's error shape: ${out.body.toString('utf8').slice(0, 200)}`
  if (out.headers?.['x-should-retry'] !== 'false') return 'a refusal without x-should-retry: false'
  if (/could not be handled/.test(e.message)) return `an untyped error: ${e.message.slice(0, 200)}`
  return null
}

/** Why an Anthropic answer breaks the invariants, or null. */
function anthropicProblem(out) {
  if (out.status === 200) return null
  if (!Number.isInteger(out.status) || out.status < 400 || out.status >= 500) return `status ${out.status}`
  const body = jsonOf(out.body)
  if (body?.type !== 'error' || typeof body.error?.type !== 'string' || typeof body.error?.message !== 'string')
    return `not Anthropic's error shape: ${out.body.toString('utf8').slice(0, 200)}`
  if (/could not be handled/.test(body.error.message)) return `an untyped error: ${body.error.message.slice(0, 200)}`
  return null
}

/** Whether an answer says the call reached the door (the dry run ended it). */
function reachedDoor(target, out) {
  if (!out) return false
  const text = out.body.toString('utf8')
  if (target === 'runtime') return out.headers?.['x-amzn-errortype']?.startsWith('DryRunException:') ?? false
  // A stream's 200 carries the refusal as an event.
  return /DryRunException/.test(text)
}

/** Which wire answers a request of the OpenAI/Anthropic handler (by its path, as the handler decides). */
function wireOf(target, input) {
  if (target === 'runtime') return 'runtime'
  const pathname = input.path.split('?')[0]
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname
  return path.startsWith('/v1/messages') ? 'anthropic' : 'openai'
}

/**
 * Runs one input through its target and checks it: null when every invariant holds, else a
 * sentence saying which broke.
 */
export async function check(harness, target, input) {
  const got = await harness.answer(target, input)
  if (got.hung) return `no answer within ${TIME_LIMIT_MS} ms`
  if (got.threw) return `the handler threw ${got.threw?.name}: ${String(got.threw?.message).slice(0, 300)}`
  const { out } = got
  const wire = wireOf(target, input)
  const problem =
    wire === 'runtime' ? runtimeProblem(out) : wire === 'openai' ? openaiProblem(out) : anthropicProblem(out)
  if (problem) return problem
  const said = () => (out ? `${out.status} ${out.body.toString('utf8').slice(0, 300)}` : 'null')
  if (input.expect === 'door' && !reachedDoor(target, out))
    return `a well-formed request did not reach the door: ${said()}`
  if (input.expect === 'refused' && (out === null || out.status < 400 || reachedDoor(target, out)))
    return `a malformed request was not refused: ${said()}`
  if (input.expect === 'ok') {
    if (out?.status !== 200) return `a well-formed request was refused: ${said()}`
    if (input.upload !== undefined && jsonOf(out.body)?.status === 'failed')
      return `a well-formed batch failed: ${said()}`
    if (input.file) {
      const object = jsonOf(out.body)
      if (object?.filename !== input.file.filename)
        return `the file's name came back as ${JSON.stringify(object?.filename)}, not ${JSON.stringify(input.file.filename)}`
      const content = await harness.get(`/v1/files/${object.id}/content`)
      const want = Buffer.from(input.file.bytesBase64, 'base64')
      if (content.status !== 200 || !Buffer.from(content.body).equals(want))
        return `the file's content did not round-trip (${content.body.length} bytes, ${want.length} sent)`
      if (object.bytes !== want.length) return `the file object says ${object.bytes} bytes, not ${want.length}`
    }
  }
  return null
}

// ---------------------------------------------------------------------------
// Generators

const ODD_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '']
const ODD_STRINGS = ['', ' ', '\u0000', '\ud800', '%', '%E0%A4%A', '../..', 'a'.repeat(3000), '\u202e', 'null', '{}']

/** Any JSON value, odd strings and keys included. */
const anyJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(0, -1, 1e308, -0, 2 ** 31, 2 ** 53 + 1, 1.5),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom(...ODD_STRINGS),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...ODD_KEYS)), tie('value'), {
    maxKeys: 4,
  }),
})).value

/** A member's value: usually of the right shape, sometimes anything. */
const either = (right) => fc.oneof({ weight: 3, arbitrary: right }, { weight: 1, arbitrary: anyJson })

/** An object of optional members (each either right or wrong), sometimes with extra members. */
function members(shape, { extra = true } = {}) {
  const record = fc.record(Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, either(v)])), {
    requiredKeys: [],
  })
  if (!extra) return record
  return fc
    .tuple(
      record,
      fc.option(
        fc.dictionary(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom(...ODD_KEYS)), anyJson, { maxKeys: 2 }),
      ),
    )
    .map(([r, more]) => {
      if (!more) return r
      const out = { ...r }
      for (const [k, v] of Object.entries(more))
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true })
      return out
    })
}

const text = fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme' }).filter((s) => s.trim() !== '')

/** The bytes of a body: its JSON, or that JSON cut short, or JSON of a non-object, or random bytes. */
function bodyOf(value) {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant(value).map((v) => Buffer.from(JSON.stringify(v))) },
    {
      weight: 1,
      arbitrary: fc.nat().map((n) => {
        const s = Buffer.from(JSON.stringify(value))
        return s.subarray(0, n % (s.length + 1))
      }),
    },
    { weight: 1, arbitrary: anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  )
}

/** A header value: a plausible one or anything. */
const headerValue = (...plausible) =>
  fc.oneof(
    fc.constantFrom(...plausible),
    fc.string({ maxLength: 30 }),
    fc.constantFrom(
      '',
      ' ',
      '1e308',
      '-1',
      'NaN',
      '0.000001',
      '99999999999999999999',
      '2026-13-45T99:00:00Z',
      '\u00e9',
    ),
  )

/** Headers: each optional. */
const headersOf = (shape) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant({}) },
    // One or two of them, or any of them.
    {
      weight: 2,
      arbitrary: fc
        .subarray(Object.keys(shape), { minLength: 1, maxLength: 2 })
        .chain((keys) => fc.record(Object.fromEntries(keys.map((k) => [k, shape[k]])))),
    },
    { weight: 1, arbitrary: fc.record(shape, { requiredKeys: [] }) },
  )

/** A path segment: plausible ones, anything, percent-encoded or broken percent-encoding. */
const segment = (...plausible) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...plausible) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.constantFrom('%', '%E0%A4%A', '%zz', '%00', '%2F', '..', '%C0%AF', 'a%') },
  )

// The runtime wire -----------------------------------------------------------

const claudeBody = members({
  anthropic_version: fc.constant('bedrock-2023-05-31'),
  max_tokens: fc.integer({ min: 1, max: 4096 }),
  messages: fc.array(members({ role: fc.constantFrom('user', 'assistant'), content: either(text) }), { maxLength: 3 }),
  temperature: fc.double({ min: 0, max: 1, noNaN: true }),
  system: text,
})
const converseBody = members({
  messages: fc.array(
    members({ role: fc.constantFrom('user', 'assistant'), content: fc.array(members({ text }), { maxLength: 2 }) }),
    { maxLength: 3 },
  ),
  inferenceConfig: members({ maxTokens: fc.integer({ min: 1, max: 4096 }), temperature: fc.double({ noNaN: true }) }),
  system: fc.array(members({ text }), { maxLength: 2 }),
})

const runtimeHeaders = headersOf({
  'content-type': headerValue('application/json', 'application/octet-stream', 'text/plain'),
  accept: headerValue('application/json', '*/*', 'image/png'),
  'x-amzn-bedrock-accept': headerValue('application/json', '*/*'),
  'x-amzn-bedrock-trace': headerValue('ENABLED', 'DISABLED', 'ENABLED_FULL'),
  'x-amzn-bedrock-guardrailidentifier': headerValue('gr-123'),
  'x-amzn-bedrock-guardrailversion': headerValue('1', 'DRAFT'),
  'x-amzn-bedrock-performanceconfig-latency': headerValue('standard', 'optimized'),
  'x-amzn-bedrock-service-tier': headerValue('flex', 'default', 'priority'),
  'x-amzn-bedrock-request-metadata': headerValue('{"a":"b"}'),
  'x-bedrock-batch-deadline': headerValue('1900000000000', '2030-01-01T00:00:00Z'),
  'amz-sdk-invocation-id': headerValue('7d1f9a3e-0000-4000-8000-000000000000'),
})

const runtimeInput = fc
  .record({
    method: fc.oneof(
      { weight: 19, arbitrary: fc.constant('POST') },
      { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE') },
    ),
    model: segment(CLAUDE, NOVA, encodeURIComponent(CLAUDE), 'us.anthropic.claude-3-5-haiku-20241022-v1%3A0', 'x'),
    op: fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom('invoke', 'converse', 'invoke-with-response-stream', 'converse-stream') },
      { weight: 1, arbitrary: fc.constantFrom('invoke/', 'other', 'converse/x', '') },
    ),
    headers: runtimeHeaders,
    body: fc.oneof(claudeBody, converseBody).chain(bodyOf),
  })
  .map(({ method, model, op, headers, body }) => ({ method, path: `/model/${model}/${op}`, headers, body }))

/** Well-formed runtime requests: each reaches the door. */
const runtimeValid = fc.oneof(
  fc
    .record({
      text,
      max: fc.integer({ min: 1, max: 4096 }),
      op: fc.constantFrom('invoke', 'invoke-with-response-stream'),
    })
    .map(({ text, max, op }) => ({
      method: 'POST',
      path: `/model/${encodeURIComponent(CLAUDE)}/${op}`,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(
        JSON.stringify({
          anthropic_version: 'bedrock-2023-05-31',
          max_tokens: max,
          messages: [{ role: 'user', content: text }],
        }),
      ),
      expect: 'door',
    })),
  fc.record({ text, op: fc.constantFrom('converse', 'converse-stream') }).map(({ text, op }) => ({
    method: 'POST',
    path: `/model/${NOVA}/${op}`,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: [{ text }] }] })),
    expect: 'door',
  })),
)

// The OpenAI wire -------------------------------------------------------------

const chatMessage = members({
  role: fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool'),
  content: fc.oneof(
    text,
    fc.array(
      members({
        type: fc.constantFrom('text', 'image_url'),
        text,
        image_url: members({
          url: fc.constantFrom(
            'data:image/png;base64,iVBORw0KGgo=',
            'data:image/bmp;base64,AA',
            'https://x/y.png',
            'data:image/png;base64,',
          ),
        }),
      }),
      { maxLength: 2 },
    ),
  ),
  tool_calls: fc.array(
    members({
      id: fc.string(),
      type: fc.constant('function'),
      function: members({ name: fc.string(), arguments: fc.constantFrom('{}', '{"a":1}', '{', '') }),
    }),
    { maxLength: 2 },
  ),
  tool_call_id: fc.string({ maxLength: 8 }),
})
const chatBody = members({
  model: fc.constantFrom(NOVA, 'fuzz-chat', CLAUDE, ''),
  messages: fc.array(chatMessage, { maxLength: 3 }),
  max_tokens: fc.integer({ min: -1, max: 2 ** 31 }),
  max_completion_tokens: fc.integer({ min: 0, max: 100 }),
  temperature: fc.double({ min: -1, max: 3, noNaN: true }),
  top_p: fc.double({ min: 0, max: 1, noNaN: true }),
  stop: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 })),
  n: fc.constantFrom(1, 2),
  stream: fc.boolean(),
  stream_options: members({ include_usage: fc.boolean() }),
  tools: fc.array(
    members({
      type: fc.constant('function'),
      function: members({ name: fc.string(), description: fc.string(), parameters: anyJson }),
    }),
    { maxLength: 2 },
  ),
  tool_choice: fc.oneof(
    fc.constantFrom('auto', 'none', 'required'),
    members({ type: fc.constant('function'), function: members({ name: fc.string() }) }),
  ),
  response_format: members({
    type: fc.constantFrom('text', 'json_schema', 'json_object'),
    json_schema: members({ name: fc.string(), schema: anyJson }),
  }),
  service_tier: fc.constantFrom('auto', 'default', 'flex', 'priority'),
  seed: fc.integer(),
  user: fc.string(),
})
const embeddingsBody = members({
  model: fc.constantFrom(TITAN_EMBED, 'cohere.embed-english-v3', 'amazon.titan-embed-text-v1', NOVA),
  input: fc.oneof(text, fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 })),
  encoding_format: fc.constantFrom('float', 'base64', 'int8'),
  dimensions: fc.integer({ min: -1, max: 2048 }),
})
const batchBody = members({
  input_file_id: fc.constantFrom('file-0123456789abcdef01234567', 'file-x', ''),
  endpoint: fc.constantFrom('/v1/chat/completions', '/v1/embeddings', '/v1/completions'),
  completion_window: fc.constantFrom('24h', '1h'),
  metadata: fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
})
const id = segment('file-0123456789abcdef01234567', 'batch_0123456789abcdef01234567', 'x')
const query = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  fc
    .record(
      {
        limit: headerValue('1', '20', '0', '100000', '1.5'),
        after: headerValue('x', 'file-1'),
        order: headerValue('asc', 'desc'),
        purpose: headerValue('batch'),
      },
      { requiredKeys: [] },
    )
    .map((q) => `?${new URLSearchParams(q)}`),
)
const authHeaders = {
  authorization: headerValue('Bearer k', 'Bearer ', 'Basic x'),
  'x-api-key': headerValue('k'),
  'idempotency-key': headerValue('k1'),
  'x-stainless-timeout': headerValue('600', '1e308', '0', '-5', '1e20'),
  'x-stainless-read-timeout': headerValue('600', '1e300'),
}

/** A line of a batch's input file: a request of the right members (each right or wrong), or anything. */
const batchLine = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        custom_id: either(fc.constantFrom('a', 'b', 'c', 'x'.repeat(65))),
        method: either(fc.constantFrom('POST', 'GET')),
        url: either(fc.constantFrom('/v1/chat/completions', '/v1/embeddings', '/v1/x')),
        body: fc.oneof(chatBody, embeddingsBody),
      })
      .map((l) => JSON.stringify(l)),
  },
  { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v) ?? '') },
  { weight: 1, arbitrary: fc.string({ maxLength: 40, unit: 'binary' }) },
)
const batchWithFile = fc
  .record({
    lines: fc.array(batchLine, { maxLength: 5 }),
    endpoint: fc.constantFrom('/v1/chat/completions', '/v1/embeddings'),
    metadata: fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 })),
  })
  .map(({ lines, endpoint, metadata }) => ({
    method: 'POST',
    path: '/v1/batches',
    headers: {},
    upload: lines.join('\n'),
    body: Buffer.from(
      JSON.stringify({
        input_file_id: '$UPLOAD',
        endpoint,
        completion_window: '24h',
        ...(metadata ? { metadata } : {}),
      }),
    ),
  }))

/** A batch of well-formed chat lines: taken (200, not failed), its lines sent through the door. */
const batchValid = fc
  .array(
    fc.record({
      model: fc.constantFrom(NOVA, 'fuzz-chat'),
      content: text,
      max_tokens: fc.option(fc.integer({ min: 1, max: 4096 }), { nil: undefined }),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((reqs) => ({
    method: 'POST',
    path: '/v1/batches',
    headers: {},
    upload: reqs
      .map(({ model, content, max_tokens }, i) =>
        JSON.stringify({
          custom_id: `r${i}`,
          method: 'POST',
          url: '/v1/chat/completions',
          body: { model, messages: [{ role: 'user', content }], max_tokens },
        }),
      )
      .join('\n'),
    body: Buffer.from(
      JSON.stringify({ input_file_id: '$UPLOAD', endpoint: '/v1/chat/completions', completion_window: '24h' }),
    ),
    expect: 'ok',
  }))

const openaiInput = fc.oneof(
  { weight: 1, arbitrary: batchWithFile },
  { weight: 1, arbitrary: batchValid },
  {
    weight: 4,
    arbitrary: fc
      .record({
        headers: headersOf({ ...authHeaders, 'content-type': headerValue('application/json') }),
        body: chatBody.chain(bodyOf),
      })
      .map((r) => ({ method: 'POST', path: '/v1/chat/completions', ...r })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ headers: headersOf(authHeaders), body: embeddingsBody.chain(bodyOf) })
      .map((r) => ({ method: 'POST', path: '/v1/embeddings', ...r })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ headers: headersOf(authHeaders), body: batchBody.chain(bodyOf) })
      .map((r) => ({ method: 'POST', path: '/v1/batches', ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'),
        route: fc.constantFrom(
          '/v1/models',
          '/v1/models/',
          '/v1/files',
          '/v1/files/',
          '/v1/batches',
          '/v1/batches/',
          '/v1',
          '/v1/',
          '/v1/x/',
        ),
        id: fc.option(id),
        tail: fc.constantFrom('', '/content', '/cancel', '/', '//'),
        query,
        headers: headersOf(authHeaders),
        body: fc.oneof(
          fc.constant(Buffer.alloc(0)),
          anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? '')),
        ),
      })
      .map(({ method, route, id, tail, query, headers, body }) => ({
        method,
        path: `${route}${id === null ? '' : `${route.endsWith('/') ? '' : '/'}${id}${tail}`}${query}`,
        headers,
        body,
      })),
  },
)

/** Well-formed Chat Completions requests: each reaches the door. */
const openaiValid = fc
  .record({
    model: fc.constantFrom(NOVA, 'fuzz-chat'),
    messages: fc
      .array(
        fc.oneof(
          fc.record({ role: fc.constant('user'), content: text }),
          fc.record({ role: fc.constant('system'), content: text }),
          fc.record({
            role: fc.constant('user'),
            content: fc.array(fc.record({ type: fc.constant('text'), text }), { minLength: 1, maxLength: 2 }),
          }),
        ),
        { minLength: 1, maxLength: 3 },
      )
      .filter((ms) => ms.some((m) => m.role === 'user')),
    options: fc.record(
      {
        max_tokens: fc.integer({ min: 1, max: 4096 }),
        temperature: fc.double({ min: 0, max: 1, noNaN: true }),
        top_p: fc.double({ min: 0.01, max: 1, noNaN: true }),
        stream: fc.boolean(),
      },
      { requiredKeys: [] },
    ),
  })
  .map(({ model, messages, options }) => ({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ model, messages, ...options })),
    expect: 'door',
  }))

// The Anthropic wire ----------------------------------------------------------

const messagesBody = members({
  model: fc.constantFrom(CLAUDE, 'us.anthropic.claude-3-5-haiku-20241022-v1:0', ''),
  max_tokens: fc.integer({ min: -1, max: 100000 }),
  messages: fc.array(members({ role: fc.constantFrom('user', 'assistant'), content: either(text) }), { maxLength: 3 }),
  stream: fc.boolean(),
  system: text,
  metadata: members({ user_id: fc.string() }),
  temperature: fc.double({ noNaN: true }),
  anthropic_version: fc.string(),
})
const anthropicHeaders = headersOf({
  ...authHeaders,
  'anthropic-version': headerValue('2023-06-01'),
  'anthropic-beta': headerValue('tools-2024-04-04', ',,', 'a, b'),
})
const msgBatchBody = members({
  requests: fc.array(members({ custom_id: fc.constantFrom('a', 'b', 'bad id', ''), params: messagesBody }), {
    maxLength: 3,
  }),
})

const anthropicInput = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({ headers: anthropicHeaders, body: messagesBody.chain(bodyOf) })
      .map((r) => ({ method: 'POST', path: '/v1/messages', ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ headers: anthropicHeaders, body: msgBatchBody.chain(bodyOf) })
      .map((r) => ({ method: 'POST', path: '/v1/messages/batches', ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
        id: fc.option(segment('msgbatch_0123456789abcdef01234567', 'x')),
        tail: fc.constantFrom('', '/results', '/cancel', '/', '/x'),
        query: fc.oneof(
          fc.constant(''),
          fc
            .record(
              { limit: headerValue('1', '0', '1001'), before_id: headerValue('x'), after_id: headerValue('x') },
              { requiredKeys: [] },
            )
            .map((q) => `?${new URLSearchParams(q)}`),
        ),
        headers: anthropicHeaders,
        base: fc.constantFrom('/v1/messages/batches', '/v1/messages', '/v1/messages/'),
      })
      .map(({ method, id, tail, query, headers, base }) => ({
        method,
        path: `${base}${id === null ? '' : `/${id}${tail}`}${query}`,
        headers,
        body: Buffer.alloc(0),
      })),
  },
)

/** Well-formed Messages requests: each reaches the door. */
const anthropicValid = fc
  .record({
    messages: fc.array(fc.record({ role: fc.constant('user'), content: text }), { minLength: 1, maxLength: 1 }),
    max_tokens: fc.integer({ min: 1, max: 4096 }),
    options: fc.record(
      { system: text, stream: fc.boolean(), temperature: fc.double({ min: 0, max: 1, noNaN: true }) },
      { requiredKeys: [] },
    ),
  })
  .map(({ messages, max_tokens, options }) => ({
    method: 'POST',
    path: '/v1/messages',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: Buffer.from(JSON.stringify({ model: CLAUDE, max_tokens, messages, ...options })),
    expect: 'door',
  }))

// The multipart parser of POST /v1/files --------------------------------------

/** A boundary that may go unquoted in Content-Type (RFC 2045's token: no tspecials). */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/
const BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"
const boundary = fc
  .array(fc.constantFrom(...BCHARS), { minLength: 1, maxLength: 70 })
  .map((cs) => cs.join(''))
  .filter((b) => !b.endsWith(' '))
const safeName = fc
  .array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.'), { minLength: 1, maxLength: 20 })
  .map((cs) => cs.join(''))

/** A multipart/form-data body of `parts` (`{ name, filename?, type?, bytes }`) with `boundary`. */
export function multipart(boundary, parts, { preamble = '', epilogue = '' } = {}) {
  const chunks = [Buffer.from(preamble)]
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`
    if (p.filename !== undefined) head += `; filename="${p.filename}"`
    head += '\r\n'
    if (p.type) head += `Content-Type: ${p.type}\r\n`
    chunks.push(Buffer.from(`${head}\r\n`), Buffer.from(p.bytes), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n${epilogue}`))
  return Buffer.concat(chunks)
}

/** Well-formed uploads: the file comes back with its name and bytes. */
const multipartValid = boundary
  .chain((b) =>
    fc.record({
      boundary: fc.constant(b),
      filename: safeName,
      // Random bytes, or text made of the boundary's pieces, CR, LF and dashes.
      bytes: fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc
          .array(fc.constantFrom('\r', '\n', '-', '--', b, `--${b}`, `\n--${b}`, 'a', '\r\n\r\n'), { maxLength: 12 })
          .map((xs) => new Uint8Array(Buffer.from(xs.join('')))),
      ),
      preamble: fc.constantFrom('', 'This is the preamble.\r\n', `${b}\r\n`),
      epilogue: fc.constantFrom('', 'epilogue', `\r\n--${b}\r\n`),
      type: fc.constantFrom(undefined, 'application/jsonl', 'application/octet-stream'),
      purposeFirst: fc.boolean(),
      extra: fc.array(fc.record({ name: safeName, value: fc.string({ maxLength: 20 }) }), { maxLength: 2 }),
      quoted: fc.boolean(),
    }),
  )
  .filter(
    ({ bytes, boundary }) =>
      !Buffer.from(`\r\n${Buffer.from(bytes).toString('latin1')}`, 'latin1').includes(`\r\n--${boundary}`),
  )
  .map(({ boundary, filename, bytes, type, purposeFirst, extra, quoted, preamble, epilogue }) => {
    const file = { name: 'file', filename, type, bytes }
    const purpose = { name: 'purpose', bytes: Buffer.from('batch') }
    const others = extra
      .filter((e) => e.name !== 'file' && e.name !== 'purpose')
      .map((e) => ({ name: e.name, bytes: Buffer.from(e.value) }))
    const parts = purposeFirst ? [purpose, file, ...others] : [...others, file, purpose]
    return {
      method: 'POST',
      path: '/v1/files',
      headers: {
        'content-type': `multipart/form-data; boundary=${quoted || !TOKEN.test(boundary) ? `"${boundary}"` : boundary}`,
      },
      body: multipart(boundary, parts, { preamble: preamble && `${preamble}\r\n`, epilogue }),
      expect: 'ok',
      file: { filename, bytesBase64: Buffer.from(bytes).toString('base64') },
    }
  })

/** Malformed uploads: cut short, wrong boundary, odd headers, missing parts, random bytes. */
const multipartInput = fc
  .record({
    boundary,
    declared: fc.oneof(fc.constant(null), boundary, fc.constantFrom('', '"', '""', 'a b', 'x'.repeat(200))),
    parts: fc.array(
      fc.record({
        name: fc.oneof(fc.constantFrom('file', 'purpose', 'file"', ''), fc.string({ maxLength: 10 })),
        filename: fc.option(fc.oneof(safeName, fc.string({ maxLength: 20 })), { nil: undefined }),
        type: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        bytes: fc.oneof(
          fc.constantFrom(Buffer.from('batch'), Buffer.from('other'), Buffer.alloc(0)),
          fc.uint8Array({ maxLength: 100 }),
        ),
      }),
      { maxLength: 4 },
    ),
    cut: fc.option(fc.nat()),
    flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))),
    contentType: fc.constantFrom(
      'multipart/form-data',
      'multipart/form-data;',
      'multipart/form-datax',
      'Multipart/Form-Data',
      'application/json',
      undefined,
    ),
    raw: fc.option(fc.uint8Array({ maxLength: 200 }), { freq: 6 }),
  })
  .map(({ boundary, declared, parts, cut, flip, contentType, raw }) => {
    let body = raw ? Buffer.from(raw) : multipart(boundary, parts)
    if (cut !== null) body = body.subarray(0, cut % (body.length + 1))
    if (flip !== null && body.length) {
      body = Buffer.from(body)
      body[flip[0] % body.length] = flip[1]
    }
    const b = declared === null ? boundary : declared
    const headers = contentType === undefined ? {} : { 'content-type': `${contentType}; boundary=${b}` }
    return { method: 'POST', path: '/v1/files', headers, body }
  })

/** Per target: its inputs (malformed and well-formed mixed), for fast-check. */
export const ARBITRARIES = {
  runtime: fc.oneof({ weight: 4, arbitrary: runtimeInput }, { weight: 1, arbitrary: runtimeValid }),
  openai: fc.oneof({ weight: 4, arbitrary: openaiInput }, { weight: 1, arbitrary: openaiValid }),
  anthropic: fc.oneof({ weight: 4, arbitrary: anthropicInput }, { weight: 1, arbitrary: anthropicValid }),
  multipart: fc.oneof({ weight: 3, arbitrary: multipartInput }, { weight: 2, arbitrary: multipartValid }),
}

/** A fast-check property of a target over `harness`: each input's problem, if any, fails it. */
export function property(harness, target, onFailure) {
  return fc.asyncProperty(ARBITRARIES[target], async (input) => {
    const problem = await check(harness, target, input)
    if (problem) {
      onFailure?.(input, problem)
      throw new Error(problem)
    }
  })
}
