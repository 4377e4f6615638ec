#!/usr/bin/env node
'use strict'
// End-to-end check of one mode against real endpoints: N concurrent InvokeModel calls, each answer
// checked to be the one for its own request, with timings and job ids. Reads a .env file (see
// .env.example). Against real AWS it needs an account (and costs a little); with the
// AWS_ENDPOINT_URL_* variables it runs against any endpoints, such as the built-in emulator.
// Options: `npm run integration -- --help` (defined in integrationCommand below).

const fs = require('node:fs')
const path = require('node:path')
const { randomBytes } = require('node:crypto')

const { CliCommand, namedFailure, run } = require('../cli/command.js')
const { checkedOption, oneOf, seconds, wholeNumber } = require('../cli/values.js')

const DEFAULT_MODEL = 'anthropic.claude-3-haiku-20240307-v1:0'

/**
 * Parses .env text: `KEY=value` lines, optional `export `, `#` comments, values in single quotes
 * (taken as is) or double quotes (with \\n, \\t, \\" and \\\\ escapes); an unquoted value ends at ` #`.
 */
function parseDotenv(text) {
  const out = {}
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line)
    if (!m) throw new Error(`not a KEY=value line: ${JSON.stringify(raw)}`)
    const [, key, rest] = m
    let value
    if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1)
      if (end < 0) throw new Error(`unterminated quote in ${key}`)
      value = rest.slice(1, end)
    } else if (rest.startsWith('"')) {
      let i = 1
      value = ''
      for (; i < rest.length && rest[i] !== '"'; i++) {
        if (rest[i] === '\\' && i + 1 < rest.length) {
          const c = rest[++i]
          value += c === 'n' ? '\n' : c === 't' ? '\t' : c
        } else {
          value += rest[i]
        }
      }
      if (i >= rest.length) throw new Error(`unterminated quote in ${key}`)
    } else {
      value = rest.replace(/\s+#.*$/, '').trim()
    }
    out[key] = value
  }
  return out
}

/** Loads a .env file into process.env; variables already set keep their value. */
function loadDotenv(file, { required = false } = {}) {
  if (!fs.existsSync(file)) {
    if (required) throw new Error(`no such .env file: ${file}`)
    return []
  }
  const parsed = parseDotenv(fs.readFileSync(file, 'utf8'))
  const loaded = []
  for (const [k, v] of Object.entries(parsed)) {
    if (process.env[k] === undefined) {
      process.env[k] = v
      loaded.push(k)
    }
  }
  return loaded
}

/** The script's command line (its options, their defaults and its help are defined here). */
function integrationCommand() {
  return new CliCommand('integration')
    .description(
      'Sends N InvokeModel requests at once through bedrock-batch-bridge and checks that each answer is the one for its own request. ' +
        'Settings come from a .env file (see .env.example) and the environment (which wins over the file); flags win over both.',
    )
    .configureHelp({ commandUsage: () => 'npm run integration -- [options]' })
    .addOption(
      checkedOption(
        '--mode <batch|direct|openai>',
        'the mode to check (default: BEDROCK_BATCH_MODE, else batch)',
        oneOf('batch', 'direct', 'openai'),
      ),
    )
    .option('--model <ID>', `Bedrock model id or inference profile (default: BEDROCK_MODEL_ID, else ${DEFAULT_MODEL})`)
    .option('--openai-model <M>', 'openai mode: LiteLLM-style model string (default: OPENAI_MODEL)')
    .option('--api-base <URL>', 'openai mode: server base URL (default: OPENAI_API_BASE)')
    .addOption(
      checkedOption(
        '--count <N>',
        'concurrent requests (batch mode pads a job to its 100-record minimum)',
        wholeNumber(1),
      ).default(10),
    )
    .addOption(
      checkedOption('--poll-interval <S>', "batch mode: seconds between job polls (default: the client's, 5)", seconds),
    )
    .option(
      '--dotenv <PATH>',
      'the .env file to read (default: .env in the current directory, where a missing file is fine)',
    )
    .addHelpText(
      'after',
      `
Batch mode needs BEDROCK_BATCH_S3_INPUT_URI, BEDROCK_BATCH_S3_OUTPUT_URI and
BEDROCK_BATCH_ROLE_ARN. Endpoints can be redirected with AWS_ENDPOINT_URL_BEDROCK,
AWS_ENDPOINT_URL_BEDROCK_RUNTIME and AWS_ENDPOINT_URL_S3. Credentials come from
the AWS default chain (environment, profile, SSO, ...).

Exit code: 0 when every request got its own answer, 1 when any failed, 2 on a
usage or configuration error.`,
    )
    .action(async (opts) => {
      settle(opts)
      try {
        process.exitCode = await runCheck(opts, (line) => console.log(line))
      } catch (err) {
        throw namedFailure(err)
      }
    })
}

/**
 * Completes the options from the .env file and the environment, and checks them up front, so that
 * a configuration mistake is exit code 2, not a failed request.
 */
function settle(opts) {
  const envFile = path.resolve(opts.dotenv || '.env')
  const loaded = loadDotenv(envFile, { required: Boolean(opts.dotenv) })
  if (loaded.length) console.log(`read ${loaded.length} setting(s) from ${envFile}`)
  opts.mode = opts.mode || process.env.BEDROCK_BATCH_MODE || 'batch'
  opts.model = opts.model || process.env.BEDROCK_MODEL_ID || DEFAULT_MODEL
  opts.openaiModel = opts.openaiModel || process.env.OPENAI_MODEL
  opts.apiBase = opts.apiBase || process.env.OPENAI_API_BASE
  clientOptions(opts)
}

function secs(ms) {
  return `${(ms / 1000).toFixed(1)} s`
}

/** A duration for humans: milliseconds below a second, else seconds. */
function dur(ms) {
  return ms < 1000 ? `${ms} ms` : secs(ms)
}

/** Client options for the mode; the batch settings themselves come from BEDROCK_BATCH_* variables. */
function clientOptions(opts) {
  const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION
  if (opts.mode === 'openai') {
    if (!opts.openaiModel)
      throw new Error('openai mode needs --openai-model or OPENAI_MODEL (e.g. hosted_vllm/Qwen/Qwen3-32B)')
    return {
      mode: 'openai',
      region,
      modelId: opts.model,
      openai: { model: opts.openaiModel, apiBase: opts.apiBase || undefined },
    }
  }
  if (opts.mode === 'batch') {
    const missing = ['BEDROCK_BATCH_S3_INPUT_URI', 'BEDROCK_BATCH_S3_OUTPUT_URI', 'BEDROCK_BATCH_ROLE_ARN'].filter(
      (k) => !process.env[k],
    )
    if (missing.length)
      throw new Error(`batch mode needs ${missing.join(', ')} (in .env or the environment; see .env.example)`)
    return {
      mode: 'batch',
      region,
      modelId: opts.model,
      batch: opts.pollInterval ? { pollInterval: opts.pollInterval } : {},
    }
  }
  return { mode: 'direct', region, modelId: opts.model }
}

async function runCheck(opts, log) {
  const { BatchInferenceClient, InvokeModelCommand } = require('../index.js')
  const client = new BatchInferenceClient(clientOptions(opts))
  const cfg = client.config
  log('bedrock-batch-bridge integration check')
  log(`  mode       ${cfg.mode}`)
  if (cfg.mode === 'openai') log(`  model      ${opts.openaiModel}${opts.apiBase ? ` at ${opts.apiBase}` : ''}`)
  else log(`  model      ${opts.model}`)
  log(`  region     ${cfg.region}`)
  if (cfg.mode === 'batch') {
    log(`  input      ${cfg.batch.s3InputUri}`)
    log(`  output     ${cfg.batch.s3OutputUri}`)
    log(`  role       ${cfg.batch.roleArn}`)
  }
  for (const k of ['AWS_ENDPOINT_URL_BEDROCK', 'AWS_ENDPOINT_URL_BEDROCK_RUNTIME', 'AWS_ENDPOINT_URL_S3']) {
    if (process.env[k]) log(`  endpoint   ${k}=${process.env[k]}`)
  }
  log(`  requests   ${opts.count}, all at once\n`)

  const started = Date.now()
  const stamp = () => secs(Date.now() - started).padStart(8)
  client.on('job', (j) =>
    log(
      `${stamp()}  job ${j.jobArn} (${j.jobName}) ${j.status}, ${j.processedRecordCount}/${j.totalRecordCount} records`,
    ),
  )

  // Each request carries a code no other request has; a model that follows the instruction, and
  // the emulator (which repeats the question), both answer with it.
  const runId = randomBytes(3).toString('hex').toUpperCase()
  const codes = Array.from({ length: opts.count }, (_, i) => `C${runId}-${String(i).padStart(5, '0')}`)
  // Answers arrive in bursts (a job's worth at once): one line per burst, at most every 100 ms.
  let answered = 0
  let shown = 0
  let showTimer = null
  const showAnswered = () => {
    showTimer = null
    if (answered > shown) {
      shown = answered
      log(`${stamp()}  ${shown}/${opts.count} answered`)
    }
  }
  async function ask(code, i) {
    const t0 = Date.now()
    try {
      const body = {
        anthropic_version: 'bedrock-2023-05-31',
        max_tokens: 50,
        messages: [{ role: 'user', content: `Repeat this code exactly, and nothing else: ${code}` }],
      }
      const out = await client.send(
        new InvokeModelCommand({
          body: JSON.stringify(body),
          contentType: 'application/json',
          accept: 'application/json',
        }),
      )
      const text = (JSON.parse(out.body.transformToString()).content || []).map((b) => b.text || '').join('')
      answered++
      if (!showTimer) showTimer = setTimeout(showAnswered, 100)
      const ok = text.includes(code)
      return {
        i,
        code,
        ok,
        ms: Date.now() - t0,
        requestId: out.$metadata.requestId,
        problem: ok ? undefined : `answer does not contain its code: ${JSON.stringify(text.slice(0, 200))}`,
      }
    } catch (err) {
      return { i, code, ok: false, ms: Date.now() - t0, problem: `${err.name}: ${err.message}` }
    }
  }
  const pending = codes.map(ask)
  // Every request is sent: submit a partial batch now instead of waiting for batchTimeout.
  await client.flush()
  const results = await Promise.all(pending)
  clearTimeout(showTimer)
  showAnswered()
  await client.close()
  const totalMs = Date.now() - started
  const stats = client.stats()
  client.destroy()

  const failed = results.filter((r) => !r.ok)
  const times = results.map((r) => r.ms).sort((a, b) => a - b)
  log('\nresults')
  log(
    `  answers    ${results.length - failed.length} of ${results.length} right${failed.length ? `, ${failed.length} FAILED` : ' (each contains its own code)'}`,
  )
  log(
    `  time       total ${dur(totalMs)}; per request min ${dur(times[0])}, median ${dur(times[Math.floor(times.length / 2)])}, max ${dur(times[times.length - 1])}`,
  )
  for (const j of stats.jobs) {
    log(
      `  job        ${j.jobArn} ${j.status}, ${j.totalRecordCount} records (${j.successRecordCount} ok, ${j.errorRecordCount} errors)`,
    )
  }
  if (cfg.mode === 'batch') log(`  padded     ${stats.padded} filler records`)
  if (stats.tokens.input || stats.tokens.output)
    log(`  tokens     ${stats.tokens.input} input, ${stats.tokens.output} output`)
  if (cfg.mode !== 'batch') log(`  request    first id ${results.find((r) => r.requestId)?.requestId ?? 'none'}`)
  for (const f of failed.slice(0, 10))
    log(`  FAILED     #${f.i} (${f.code}): ${f.problem.length > 300 ? `${f.problem.slice(0, 300)}...` : f.problem}`)
  if (failed.length > 10) log(`  ...        and ${failed.length - 10} more`)
  log(failed.length ? 'FAIL' : 'PASS')
  return failed.length ? 1 : 0
}

if (require.main === module) {
  run(integrationCommand(), process.argv.slice(2)).then((code) => {
    if (code !== undefined) process.exitCode = code
  })
}

module.exports = { parseDotenv }
