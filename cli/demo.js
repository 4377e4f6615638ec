'use strict'
// `bedrock-batch-bridge demo`: the Python SDK README's concurrency example (500 questions sent at
// once, batched automatically), run through batch mode against the built-in emulator, with a live
// progress display and a summary; with --dry-run, the same questions as a dry run and its plan (jobs,
// records, tokens, cost). No AWS account needed: everything runs on 127.0.0.1.

const { CliCommand } = require('./command.js')
const { PLAN_NOTES, planTable } = require('./plan-table.js')
const { checkedOption, oneOf, wholeNumber } = require('./values.js')

const MODEL_ID = 'anthropic.claude-3-haiku-20240307-v1:0'
// Claude 3 Haiku's on-demand list price (USD per 1,000 tokens), for the saving estimate.
const PRICING = { [MODEL_ID]: { inputPer1kTokens: 0.00025, outputPer1kTokens: 0.00125 } }
// The emulator accepts any well-formed role ARN; nothing is assumed.
const ROLE_ARN = 'arn:aws:iam::123456789012:role/BedrockBatchRole'

/** The command (its options, their defaults and its help are defined here). */
function demoCommand() {
  return new CliCommand('demo')
    .summary('send 500 questions through batch mode against the emulator, with live progress')
    .description(
      "Starts the built-in Bedrock emulator on 127.0.0.1 and runs the Python SDK README's concurrency example through batch mode: " +
        'N questions sent at once with Promise.all, batched into jobs of 100, each answer checked to be the one for its own question. ' +
        'Needs no AWS account.',
    )
    .addOption(checkedOption('--count <N>', 'questions to send', wholeNumber(1)).default(500))
    .addOption(
      checkedOption(
        '--profile <realistic|fast>',
        'emulator job timing; realistic: each job stage 1-3 s',
        oneOf('fast', 'realistic'),
      ).default('realistic'),
    )
    .option(
      '--dry-run',
      'send the questions as a dry run: batches formed, nothing uploaded, created or sent; prints the plan (jobs, records, tokens, cost at batch and at standard prices)',
    )
    .option('--json', 'print only a JSON summary, or with --dry-run the plan (no progress display)')
    .addHelpText(
      'after',
      '\nExit code: 0 when every question got its own answer (with --dry-run: when the plan was made and every call ended with DryRunException), 1 otherwise.',
    )
    .action(async (opts) => {
      process.exitCode = await (opts.dryRun ? demoPlan(opts) : demo(opts))
    })
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`
}

function thousands(n) {
  return n.toLocaleString('en-US')
}

/** "2 InProgress, 3 Completed" for a list of jobs. */
function statusCounts(jobs) {
  const counts = {}
  for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1
  return counts
}

function describeCounts(counts) {
  return (
    Object.entries(counts)
      .map(([s, n]) => `${n} ${s}`)
      .join(', ') || 'none yet'
  )
}

/**
 * Progress on a terminal: one line, redrawn in place. Elsewhere (a pipe, a CI log): plain lines,
 * one per job status change and one when more answers have arrived (at most every 250 ms).
 */
function progressDisplay(out, total, started) {
  const tty = Boolean(out.isTTY)
  let answered = 0
  let jobs = []
  let answeredShown = 0
  let ticker = null
  let stopped = false

  const draw = () => {
    if (stopped) return
    const width = Math.max(40, (out.columns || 80) - 1)
    const barWidth = 24
    const filled = Math.round((answered / total) * barWidth)
    const bar = '#'.repeat(filled) + '-'.repeat(barWidth - filled)
    const processed = jobs.reduce((n, j) => n + j.processedRecordCount, 0)
    const records = jobs.reduce((n, j) => n + j.totalRecordCount, 0)
    const line =
      `[${bar}] ${answered}/${total} answered | jobs: ${describeCounts(statusCounts(jobs))}` +
      ` | records ${processed}/${records} | ${seconds(Date.now() - started)}`
    out.write(`\r${line.slice(0, width)}\x1b[K`)
  }
  const plain = (text) => out.write(`${seconds(Date.now() - started).padStart(7)}  ${text}\n`)

  return {
    start() {
      if (tty) {
        draw()
        ticker = setInterval(draw, 200)
        ticker.unref()
      }
    },
    stats(s) {
      jobs = s.jobs
      if (tty) draw()
      else if (answered > answeredShown) {
        answeredShown = answered
        plain(`${answered}/${total} answered`)
      }
    },
    job(j) {
      if (tty) draw()
      else plain(`job ${j.jobName}  ${j.status.padEnd(18)} ${j.processedRecordCount}/${j.totalRecordCount} records`)
    },
    answer() {
      answered++
    },
    stop() {
      if (ticker) clearInterval(ticker)
      if (tty) {
        draw()
        out.write('\n')
      } else if (answered > answeredShown) {
        plain(`${answered}/${total} answered`)
      }
      stopped = true
    },
  }
}

/** A Claude Messages body for one question, as the Python example builds it. */
function questionBody(question) {
  return JSON.stringify({
    anthropic_version: 'bedrock-2023-05-31',
    max_tokens: 256,
    messages: [{ role: 'user', content: question }],
  })
}

/** The demo's `count` questions, in the order they are sent. */
function demoQuestions(count) {
  return Array.from({ length: count }, (_, i) => `What is ${i} + ${i}?`)
}

/** The demo's `batch` options, its files under `s3://<bucket>/demo/`. */
function demoBatch(bucket) {
  return {
    s3InputUri: `s3://${bucket}/demo/input/`,
    s3OutputUri: `s3://${bucket}/demo/output/`,
    roleArn: ROLE_ARN,
    // The Python example's settings, but a 2 s batchTimeout instead of 30 s so that a remainder
    // below 100 (with --count) is padded and sent without a long wait.
    maxBatchSize: 100,
    batchTimeout: 2,
    pollInterval: 0.5,
  }
}

/** The demo's client options against the emulator `emu`, with `more` (dryRun, ...). */
function demoClientOptions(emu, more = {}) {
  return {
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    modelId: MODEL_ID,
    pricing: PRICING,
    batch: demoBatch(emu.bucket),
    ...more,
  }
}

/**
 * Runs the demo and returns its summary. `io` is `{ out }` (a writable stream; the progress
 * display goes there unless `json`).
 */
async function runDemo(opts, io = { out: process.stdout }) {
  const { startEmulator, BatchInferenceClient, InvokeModelCommand } = require('../index.js')
  const started = Date.now()
  const say = opts.json ? () => {} : (text) => io.out.write(`${text}\n`)

  const emu = await startEmulator({ profile: opts.profile })
  const options = demoClientOptions(emu)
  const client = new BatchInferenceClient(options)
  const { batch } = options
  let progress = null
  const onSignal = async () => {
    if (progress) progress.stop()
    client.destroy()
    await emu.stop()
    process.exit(130)
  }
  process.once('SIGINT', onSignal)

  say(`Bedrock batch emulator (${opts.profile} profile) on ${emu.endpoints.bedrock}, S3 on ${emu.endpoints.s3}`)
  say(
    `Sending ${opts.count} questions at once with Promise.all; batch mode groups them into jobs of up to ${batch.maxBatchSize} records.\n`,
  )

  if (!opts.json) {
    progress = progressDisplay(io.out, opts.count, started)
    client.on('progress', (s) => progress.stats(s))
    client.on('job', (j) => {
      progress.stats(client.stats())
      progress.job(j)
    })
    progress.start()
  }

  // The example itself: one call per question, all at once, each awaiting its own answer.
  async function ask(question) {
    try {
      const response = await client.send(
        new InvokeModelCommand({ body: questionBody(question), contentType: 'application/json' }),
      )
      const result = JSON.parse(response.body.transformToString())
      return { answer: result.content[0].text }
    } catch (err) {
      return { error: `${err.name}: ${err.message}` }
    } finally {
      if (progress) progress.answer()
    }
  }
  let stats
  let answers
  const questions = demoQuestions(opts.count)
  try {
    answers = await Promise.all(questions.map(ask))
    await client.close()
    stats = client.stats()
  } finally {
    if (progress) progress.stop()
    process.removeListener('SIGINT', onSignal)
    client.destroy()
    await emu.stop()
  }
  const elapsedMs = Date.now() - started

  // The emulator's answer repeats the question, so each answer names the question it belongs to.
  const wrong = []
  let right = 0
  answers.forEach((a, i) => {
    if (a.answer?.includes(questions[i])) right++
    else wrong.push({ question: questions[i], got: a.answer ?? a.error })
  })
  const records = stats.jobs.reduce((n, j) => n + j.totalRecordCount, 0)
  const onDemandUsd = stats.jobs.reduce((usd, j) => {
    const p = PRICING[j.modelId]
    return p ? usd + (j.inputTokens / 1000) * p.inputPer1kTokens + (j.outputTokens / 1000) * p.outputPer1kTokens : usd
  }, 0)
  const summary = {
    ok: wrong.length === 0,
    profile: opts.profile,
    modelId: MODEL_ID,
    questions: opts.count,
    answersRight: right,
    answersWrong: wrong.length,
    wrong: wrong.slice(0, 5),
    jobs: stats.jobs.length,
    jobStatuses: statusCounts(stats.jobs),
    jobArns: stats.jobs.map((j) => j.jobArn),
    records,
    paddedRecords: stats.padded,
    tokens: stats.tokens,
    seconds: Math.round(elapsedMs / 100) / 10,
    onDemandCostUsd: Math.round(onDemandUsd * 1e6) / 1e6,
    estimatedSavingUsd: stats.estimatedSavingUsd,
  }

  if (!opts.json) {
    say('')
    for (const [i, a] of answers.slice(0, 5).entries()) say(`Q: ${questions[i]}\nA: ${a.answer ?? a.error}\n`)
    say('Summary')
    say(
      `  answers        ${right} of ${opts.count} right${wrong.length ? `, ${wrong.length} WRONG (first: ${JSON.stringify(wrong[0])})` : ' (each is the answer to its own question)'}`,
    )
    say(`  jobs           ${summary.jobs} (${describeCounts(summary.jobStatuses)})`)
    say(
      `  records        ${thousands(records)} (${thousands(opts.count)} questions + ${thousands(stats.padded)} padded records)`,
    )
    say(`  tokens         ${thousands(stats.tokens.input)} input, ${thousands(stats.tokens.output)} output`)
    say(`  time           ${seconds(elapsedMs)}`)
    say(
      `  saving         $${summary.estimatedSavingUsd.toFixed(6)} estimated vs on-demand ($${summary.onDemandCostUsd.toFixed(6)} on-demand at Claude 3 Haiku's list price; batch is half)`,
    )
  }
  return summary
}

/** Runs the demo as the command does; resolves with its exit code. */
async function demo(opts) {
  const summary = await runDemo(opts)
  if (opts.json) console.log(JSON.stringify(summary))
  return summary.ok ? 0 : 1
}

/**
 * The demo's questions as a dry run (`dryRun: true`) against the emulator (whose runtime is asked
 * to count the tokens): every question is sent at once, the batches are formed as the real run
 * forms them, nothing is uploaded, created or sent. Resolves with `{ plan, endings, questions }`:
 * `client.plan()` and, by error name, how the calls ended (`{ DryRunException: count }` when all
 * went as a dry run's calls go). `io` is `{ out }`, where the lines go unless `json`.
 */
async function runDemoPlan(opts, io = { out: process.stdout }) {
  const { startEmulator, BatchInferenceClient, InvokeModelCommand } = require('../index.js')
  const say = opts.json ? () => {} : (text) => io.out.write(`${text}\n`)
  const emu = await startEmulator({ profile: opts.profile })
  const options = demoClientOptions(emu, { dryRun: true })
  const client = new BatchInferenceClient(options)
  try {
    say(`Bedrock batch emulator on ${emu.endpoints.bedrock}: a dry run (dryRun: true) of the demo's questions.`)
    say(
      `Sending ${opts.count} questions at once; batches of up to ${options.batch.maxBatchSize} records are formed as batch mode forms them, and nothing is uploaded, created or sent.\n`,
    )
    const questions = demoQuestions(opts.count)
    // Each call ends once the plan is read (a dry run's calls reject with DryRunException).
    const calls = questions.map((q) =>
      client.send(new InvokeModelCommand({ body: questionBody(q), contentType: 'application/json' })).then(
        () => 'answered',
        (err) => err?.name ?? 'Error',
      ),
    )
    const plan = await client.plan()
    const endings = {}
    for (const name of await Promise.all(calls)) endings[name] = (endings[name] || 0) + 1
    await client.close()
    for (const line of planTable(plan)) say(line)
    say('')
    for (const line of PLAN_NOTES) say(line)
    say(
      endings.DryRunException === opts.count
        ? `\nEach of the ${opts.count} calls ended with DryRunException once the plan was read, as a dry run's calls do.`
        : `\nThe calls ended otherwise than a dry run's should: ${describeCounts(endings)}.`,
    )
    return { plan, endings, questions: opts.count }
  } finally {
    client.destroy()
    await emu.stop()
  }
}

/** Runs the dry run as `demo --dry-run` does; resolves with its exit code. */
async function demoPlan(opts) {
  const { plan, endings, questions } = await runDemoPlan(opts)
  if (opts.json) console.log(JSON.stringify(plan))
  return endings.DryRunException === questions ? 0 : 1
}

module.exports = { demoCommand, runDemo, runDemoPlan, demoClientOptions, demoQuestions, questionBody, MODEL_ID }
