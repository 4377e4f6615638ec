// The processes of the chaos suite's serve rounds (bench/chaos.mjs runs the rounds and judges them):
// `serve` itself as a child process on a fixed port with a SQLite journal, and its callers, each with
// its SDK's own retries and nothing of ours: boto3 (bench/chaos-boto3.py, BOTO3_PYTHON: invoke_model,
// converse and the two streams, invoke_model_with_response_stream and converse_stream), the AWS CLI
// (v1, `aws bedrock-runtime invoke-model` / `converse`, one process a call; v1 has no streaming
// commands) and the official OpenAI SDK for Node (in this process, against serve's OpenAI wire;
// non-streaming: a stream on that wire starts at once and no SDK retries a stream cut by a kill).
// Every caller resolves with one result per call it settled: `{ i, kind, text, requestId?, retries? }`
// or `{ i, kind, error, cut? }` (`cut`: a stream broken after its response began, which no SDK
// retries); a call still waiting when the round's time is up (`stop()`) has none: it hung.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import OpenAI from 'openai'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const CLI = path.join(root, 'cli.js')
const BOTO3_SCRIPT = path.join(root, 'bench', 'chaos-boto3.py')
export const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0'
/** The API key serve takes on its OpenAI wire, and the name its model map gives Claude 3 Haiku. */
const API_KEY = 'test-dummy-api-key-chaos'
const MAPPED = 'chaos-haiku'
/** What the callers sign with (serve checks no signatures: any key does). */
const CALLER = { AWS_ACCESS_KEY_ID: 'test-dummy-access-key', AWS_SECRET_ACCESS_KEY: 'test-dummy-secret-key' }
/** Attempts each SDK makes of a call (its first and its retries), and its read timeout in seconds. */
export const ATTEMPTS = 30
const READ_TIMEOUT_S = 120

/** A port free on 127.0.0.1 now (serve's lives all listen on it, so that the callers' URL stays the same). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** This process's environment without what would point a child elsewhere, and no instance metadata. */
function childEnv(extra = {}) {
  const env = { ...process.env }
  for (const k of Object.keys(env)) {
    if (k.startsWith('BEDROCK_BATCH_') || k.startsWith('AWS_') || k === 'OPENAI_BASE_URL' || k === 'OPENAI_API_KEY')
      delete env[k]
  }
  const nowhere = path.join(root, 'bench', 'no-such-aws-file')
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: nowhere,
    AWS_SHARED_CREDENTIALS_FILE: nowhere,
    ...CALLER,
    ...extra,
  }
}

/**
 * One life of `serve --config <configFile> --port <port> --journal <journal>` (and the OpenAI
 * wire's API key and model map). `ready` resolves once it listens (rejects if it exits first);
 * `exited` with `{ code, signal, stderr }`; `kill(signal)`.
 */
/**
 * Writes `serve`'s config file for the emulator `emu` into `dir`: batch mode under `prefix` of the
 * emulator's bucket, with `batch` (minBatchSize, maxBatchSize) over short timers. Returns its path.
 */
export function writeServeConfig(dir, emu, prefix, batch) {
  const configFile = path.join(dir, 'serve.json')
  writeFileSync(
    configFile,
    JSON.stringify({
      region: emu.region,
      credentials: emu.credentials,
      endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
      batch: {
        s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
        s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
        roleArn: 'arn:aws:iam::123456789012:role/BedrockBatch',
        jobNamePrefix: prefix,
        batchTimeout: 0.3,
        pollInterval: 0.05,
        ...batch,
      },
    }),
  )
  return configFile
}

export function startServe({ configFile, port, journal, args = [] }) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--config',
      configFile,
      '--port',
      String(port),
      ...(journal ? ['--journal', journal] : []),
      '--api-key',
      API_KEY,
      '--model-map',
      `${MAPPED}=${MODEL}`,
      '--quiet',
      ...args,
    ],
    { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  let onOut
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
    onOut?.()
  })
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })))
  const ready = new Promise((resolve, reject) => {
    onOut = () => {
      const m = /^AWS_ENDPOINT_URL_BEDROCK_RUNTIME=(http:\/\/\S+)$/m.exec(stdout)
      if (m) resolve(m[1])
    }
    exited.then((e) => reject(new Error(`serve exited (${e.code ?? e.signal}) before it listened: ${e.stderr}`)))
  })
  ready.catch(() => {})
  const kill = (signal = 'SIGKILL') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exited
  }
  return { ready, exited, kill }
}

/** Lines of JSON a child printed (one result each), parsed; lines that are not JSON are skipped. */
function jsonLines(text) {
  const out = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      out.push(JSON.parse(line))
    } catch {}
  }
  return out
}

/** A child process whose stdout is collected; `stop()` kills it with SIGKILL. */
function collect(cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  child.on('error', (err) => (stderr += String(err)))
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  return { done, stop }
}

/** The Python with boto3 (BOTO3_PYTHON); a missing one is an error naming what to do. */
export function boto3Python() {
  const py = process.env.BOTO3_PYTHON
  const how =
    'bash .ci/test creates .cache/boto3 (or: python3 -m venv .cache/boto3 && .cache/boto3/bin/pip install boto3 awscli, then BOTO3_PYTHON=.cache/boto3/bin/python)'
  if (!py) throw new Error(`BOTO3_PYTHON is not set: the chaos suite's serve rounds need a Python with boto3: ${how}`)
  const r = spawnSync(py, ['-c', 'import boto3'], { encoding: 'utf8' })
  if (r.status !== 0)
    throw new Error(`BOTO3_PYTHON=${py} cannot import boto3 (${r.error?.message ?? r.stderr}): ${how}`)
  return py
}

/**
 * The AWS CLI: AWS_CLI, else the `aws` beside BOTO3_PYTHON (.ci/test installs awscli into that
 * virtual environment), else `aws` on the PATH. A missing one is an error naming what to do.
 */
export function awsCli() {
  const candidates = [
    process.env.AWS_CLI,
    process.env.BOTO3_PYTHON && path.join(path.dirname(process.env.BOTO3_PYTHON), 'aws'),
    'aws',
  ].filter(Boolean)
  for (const cmd of candidates) {
    if (cmd !== 'aws' && !existsSync(cmd)) continue
    const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', env: childEnv() })
    if (r.status === 0) return cmd
  }
  throw new Error(
    `no AWS CLI found (tried ${candidates.join(', ')}): the chaos suite's serve rounds call serve with it; bash .ci/test installs awscli into .cache/boto3 (or: .cache/boto3/bin/pip install awscli, or set AWS_CLI to an aws executable)`,
  )
}

/**
 * boto3's invoke_model (`invoke`), converse (`converse`), invoke_model_with_response_stream
 * (`invoke-stream`) and converse_stream (`converse-stream`) calls, `workers` at a time, each with a
 * client of its own.
 */
export function runBoto3({ url, region, invoke, converse, invokeStream = [], converseStream = [], workers }) {
  const spec = {
    url,
    region,
    modelId: MODEL,
    invoke,
    converse,
    invokeStream,
    converseStream,
    workers,
    maxAttempts: ATTEMPTS,
    readTimeout: READ_TIMEOUT_S,
  }
  const p = collect(boto3Python(), [BOTO3_SCRIPT, JSON.stringify(spec)], childEnv({ PYTHONUNBUFFERED: '1' }))
  const results = p.done.then((r) => {
    if (r.code !== 0 && !r.signal) process.stderr.write(`chaos: boto3 exited with ${r.code}: ${r.stderr}\n`)
    return jsonLines(r.stdout)
  })
  return { results, stop: p.stop }
}

/**
 * AWS CLI calls, one process each, all at once: `aws bedrock-runtime invoke-model` for `invoke`,
 * `converse` for `converse`. Their retries are botocore's, set as the CLI documents it
 * (AWS_MAX_ATTEMPTS, AWS_RETRY_MODE), and `--cli-read-timeout`.
 */
export function runAwsCli({ url, region, invoke, converse, dir }) {
  const aws = awsCli()
  const env = childEnv({
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_MAX_ATTEMPTS: String(ATTEMPTS),
    AWS_RETRY_MODE: 'standard',
    AWS_PAGER: '',
  })
  // --debug: botocore's log on stderr, where each retry says "Retry needed" (counted as the call's retries).
  const common = ['--endpoint-url', url, '--cli-read-timeout', String(READ_TIMEOUT_S), '--output', 'json', '--debug']
  const retries = (stderr) => stderr.split('Retry needed').length - 1
  const procs = []
  for (const call of invoke) {
    const outfile = path.join(dir, `cli-invoke-${call.i}.json`)
    const body = JSON.stringify({
      anthropic_version: 'bedrock-2023-05-31',
      max_tokens: 64,
      messages: [{ role: 'user', content: call.prompt }],
    })
    const args = ['bedrock-runtime', 'invoke-model', '--model-id', MODEL, '--content-type', 'application/json']
    const p = collect(aws, [...args, '--body', body, ...common, outfile], env)
    procs.push({
      stop: p.stop,
      result: p.done.then((r) => {
        if (r.signal) return null
        if (r.code !== 0)
          return { i: call.i, kind: 'cli-invoke', error: { code: `exit ${r.code}`, message: r.stderr.slice(-2000) } }
        const out = JSON.parse(readFileSync(outfile, 'utf8'))
        return {
          i: call.i,
          kind: 'cli-invoke',
          text: out.content.map((b) => b.text ?? '').join(''),
          retries: retries(r.stderr),
        }
      }),
    })
  }
  for (const call of converse) {
    const messages = JSON.stringify([{ role: 'user', content: [{ text: call.prompt }] }])
    const args = ['bedrock-runtime', 'converse', '--model-id', MODEL, '--messages', messages]
    const p = collect(aws, [...args, ...common], env)
    procs.push({
      stop: p.stop,
      result: p.done.then((r) => {
        if (r.signal) return null
        if (r.code !== 0)
          return { i: call.i, kind: 'cli-converse', error: { code: `exit ${r.code}`, message: r.stderr.slice(-2000) } }
        const out = JSON.parse(r.stdout)
        return {
          i: call.i,
          kind: 'cli-converse',
          text: out.output.message.content.map((b) => b.text ?? '').join(''),
          retries: retries(r.stderr),
        }
      }),
    })
  }
  const results = Promise.all(procs.map((p) => p.result)).then((rs) => rs.filter(Boolean))
  return {
    results,
    stop: () => {
      for (const p of procs) p.stop()
    },
  }
}

/**
 * OpenAI chat completions through serve's OpenAI wire with the official SDK (`maxRetries`: its
 * own retries of a connection error, a 408, 409, 429 or 5xx), `workers` at a time. Its fetch is
 * watched, not wrapped in retries: each attempt is counted, to report the SDK's retries.
 */
export function runOpenAI({ url, calls, workers }) {
  const controller = new AbortController()
  const attempts = new Map()
  const client = new OpenAI({
    baseURL: `${url}/v1`,
    apiKey: API_KEY,
    maxRetries: ATTEMPTS - 1,
    timeout: READ_TIMEOUT_S * 1000,
    fetch: (input, init) => {
      const marker = /Chaos question (\d+):/.exec(String(init?.body ?? ''))
      if (marker) attempts.set(marker[1], (attempts.get(marker[1]) ?? 0) + 1)
      return fetch(input, init)
    },
  })
  const results = []
  const queue = [...calls]
  const worker = async () => {
    for (let call = queue.shift(); call && !controller.signal.aborted; call = queue.shift()) {
      try {
        const out = await client.chat.completions.create(
          { model: MAPPED, messages: [{ role: 'user', content: call.prompt }], max_tokens: 64 },
          { signal: controller.signal },
        )
        const retries = (attempts.get(String(call.i)) ?? 1) - 1
        results.push({ i: call.i, kind: 'openai', text: out.choices[0].message.content, requestId: out.id, retries })
      } catch (err) {
        if (controller.signal.aborted) return
        results.push({
          i: call.i,
          kind: 'openai',
          error: { code: err.constructor.name, status: err.status, message: err.message },
        })
      }
    }
  }
  const done = Promise.all(Array.from({ length: workers }, worker)).then(() => results)
  return { results: done, stop: () => controller.abort() }
}
