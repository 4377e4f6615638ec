// What the OpenAI and Anthropic wire specs of `serve` share: serve started for the official SDKs
// (an API key, a model map), and what reached AWS, read at the emulator (its jobs by the test's
// own job name prefix, their input records, its log of on-demand calls).

import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'

import { CLAUDE, childEnv, getText, listKeys, runtimeRequests, startServe, waitFor } from './helpers.mjs'

const FIXTURES = fileURLToPath(new URL('./fixtures/serve/', import.meta.url))

/** The API key serve takes in these specs (a static dummy). */
export const API_KEY = 'test-dummy-api-key-1'
/** A name the model map gives Claude 3 Haiku. */
export const MAPPED = 'house-haiku'

export const answerTo = (prompt) => `This is the emulator's answer to: ${prompt}`

/** serve on the emulator with `--api-key API_KEY --model-map MAPPED=CLAUDE` (plus `args`). */
export function startWireServe(t, emu, { args = [], ...rest } = {}) {
  return startServe(t, emu, { ...rest, args: ['--api-key', API_KEY, '--model-map', `${MAPPED}=${CLAUDE}`, ...args] })
}

/** The jobs the emulator has whose name contains `prefix` (paginated). */
export async function jobsNamed(bedrock, prefix) {
  const jobs = []
  let nextToken
  do {
    const res = await bedrock.send(
      new ListModelInvocationJobsCommand({ nameContains: prefix, maxResults: 100, nextToken }),
    )
    jobs.push(...(res.invocationJobSummaries ?? []))
    nextToken = res.nextToken
  } while (nextToken)
  return jobs
}

/** Waits until `count` jobs named with `prefix` (any number when undefined) have ended; returns them. */
export function jobsEnded(bedrock, prefix, count) {
  const ended = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']
  return waitFor(`${count ?? 'the'} jobs named ${prefix} to end`, async () => {
    const jobs = await jobsNamed(bedrock, prefix)
    return (
      (count === undefined ? jobs.length > 0 : jobs.length === count) &&
      jobs.every((j) => ended.includes(j.status)) &&
      jobs
    )
  })
}

/** The records of a job's input (its JSONL files in the emulator's S3), parsed. */
export async function jobInput(s3, job) {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(job.inputDataConfig.s3InputDataConfig.s3Uri)
  const [bucket, key] = [m[1], m[2]]
  const keys = key.endsWith('/') ? (await listKeys(s3, bucket, key)).filter((k) => k.endsWith('.jsonl')) : [key]
  const records = []
  for (const k of keys) {
    for (const line of (await getText(s3, bucket, k)).split('\n'))
      if (line.trim() !== '') records.push(JSON.parse(line))
  }
  return records
}

/** The text of every user turn of a record's modelInput (Converse or Claude's native body), joined. */
export function recordText(modelInput) {
  const parts = []
  for (const m of modelInput?.messages ?? []) {
    if (m.role !== 'user') continue
    if (typeof m.content === 'string') parts.push(m.content)
    else for (const b of m.content ?? []) if (typeof b.text === 'string') parts.push(b.text)
  }
  return parts.join(' ')
}

/** How many records across `jobs` are each of `prompts` (a record's user text is the prompt, exactly). */
export async function recordCounts(s3, jobs, prompts) {
  const counts = new Map(prompts.map((p) => [p, 0]))
  let total = 0
  for (const job of jobs) {
    const input = await jobInput(s3, job)
    total += input.length
    for (const r of input) {
      const text = recordText(r.modelInput)
      if (counts.has(text)) counts.set(text, counts.get(text) + 1)
    }
  }
  return { counts, total }
}

/** The on-demand calls the emulator's runtime got (InvokeModel, Converse and their streams). */
export async function onDemandCalls(emu) {
  return (await runtimeRequests(emu)).filter((r) => r.operation !== 'count-tokens')
}

/**
 * The Python of `envVar` (OPENAI_PYTHON, ANTHROPIC_PYTHON) with `module` importable; a missing one
 * fails the test, naming what to do (never a skip).
 */
export function wirePython(envVar, module) {
  const py = process.env[envVar]
  if (!py)
    throw new Error(
      `${envVar} is not set: this test needs a Python with the ${module} SDK from PyPI (bash .ci/test creates .cache/wire-sdks; or: python3 -m venv .cache/wire-sdks && .cache/wire-sdks/bin/pip install openai anthropic, then ${envVar}=.cache/wire-sdks/bin/python)`,
    )
  const r = spawnSync(py, ['-c', `import ${module}`], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${envVar}=${py} cannot import ${module}: ${r.error?.message ?? r.stderr}`)
  return py
}

/**
 * Runs `fixtures/serve/<script>` with `py` and `input` (JSON), with the variables of `env` added to
 * the children's environment; resolves with its JSON output.
 */
export function runPythonScript(py, script, input, env = {}) {
  const child = spawn(py, [join(FIXTURES, script), JSON.stringify(input)], {
    env: childEnv({ PYTHONDONTWRITEBYTECODE: '1', ...env }),
    cwd: FIXTURES,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
  })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}:\n${stderr}`))
      try {
        resolve(JSON.parse(stdout))
      } catch {
        reject(new Error(`${script} printed no JSON:\n${stdout}\n${stderr}`))
      }
    })
  })
}
