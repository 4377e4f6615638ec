'use strict'
// `bedrock-batch-bridge jobs list|show|watch|stop|results`: look at batch inference jobs on Bedrock
// (or on any endpoint given by --endpoint-url / AWS_ENDPOINT_URL_BEDROCK, such as the emulator), or
// in a store (--store, --journal) read from beside the processes that own it.

const fs = require('node:fs')

const { CliCommand, namedFailure, synopsis } = require('./command.js')
const { openReader } = require('./reader.js')
const { TERMINAL } = require('../lib/job-status.js')
const { adoptJobs } = require('./adopt.js')
const { checkedOption, instant, seconds, wholeNumber } = require('./values.js')
const { watch } = require('./watch.js')

/** A job's ARN or id, the argument of every subcommand but `list`. */
const JOB = ['<jobArn|jobId>', 'a job ARN or id']

/** The command group and its subcommands (their options, defaults and help are defined here). */
function jobsCommand() {
  const jobs = new CliCommand('jobs')
    .summary("list, show (and wait for), watch, stop batch inference jobs, and write a job's results as JSONL")
    .description(
      "Lists, shows (and waits for), watches live and stops batch inference jobs, and writes a job's results joined with its input as JSONL.",
    )
    .option('--region <R>', "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the AWS profile's region)")
    .option('--endpoint-url <URL>', 'Bedrock control plane (default: AWS_ENDPOINT_URL_BEDROCK, else AWS)')
    .option('--s3-endpoint-url <URL>', 'S3 (default: AWS_ENDPOINT_URL_S3, else AWS)')
    .option('--json', 'machine-readable output')
    .option(
      '--store <URL>',
      "list, show and read the jobs of a PostgreSQL store's group instead of Bedrock's (env BEDROCK_BATCH_STORE_URL)",
    )
    .option('--group <NAME>', 'the store group (default: "default")')
    .option(
      '--journal <FILE>',
      'list, show, watch and read the jobs of a SQLite journal (read beside its owner, which keeps its lock)',
    )
    .addHelpText(
      'after',
      '\nCredentials come from the AWS default chain (environment, profile, SSO, ...).\nWith --store (or BEDROCK_BATCH_STORE_URL) or --journal, list, show, watch and results read the store; stop always acts on Bedrock.\nrun "bedrock-batch-bridge jobs <command> --help" for a command\'s options',
    )
    .asGroup()
  jobs.configureHelp({ ...jobs.configureHelp(), subcommandTerm: (sub) => synopsis(jobs, sub) })

  jobs
    .command('list')
    .description('Lists jobs, newest first.')
    .option('--status <S>', 'only jobs with this status (Submitted, InProgress, Completed, Failed, Stopped, ...)')
    .option('--name-contains <X>', 'only jobs whose name contains X')
    .addOption(checkedOption('--max <N>', 'list at most N jobs (default: all)', wholeNumber(1)))
    .action(withSource(list, listStored))
  jobs
    .command('show')
    .description('Shows one job; with --wait, follows it until it ends (its progress on stderr).')
    .argument(...JOB)
    .option('--wait', 'wait until the job ends, showing its progress')
    .addOption(checkedOption('--poll-interval <S>', 'seconds between polls with --wait', seconds).default(2))
    .action(withSource(show, showStored))
  jobs
    .command('watch')
    .description(
      'Shows the jobs live, one line per job (progress bar, counts, status, elapsed, ETA), redrawn in place on a terminal every --interval seconds (piped: a line each time a job changes), until every job shown has ended (or, with --follow, until stopped); q or Ctrl-C quits.',
    )
    .option('--status <S>', 'only jobs with this status')
    .option('--name-contains <X>', 'only jobs whose name contains X')
    .addOption(checkedOption('--max <N>', 'at most N jobs, newest first', wholeNumber(1)).default(20))
    .addOption(checkedOption('--interval <S>', 'seconds between reads', seconds).default(2))
    .option('--follow', 'keep watching after every job shown has ended (until q or Ctrl-C)')
    .option('--until-done', 'the default, kept for scripts that give it: exit once every job shown has ended')
    .action(withSource(watchBedrock, watchStored))
  jobs
    .command('stop')
    .description('Stops a job.')
    .argument(...JOB)
    .action(withSource(stop, null))
  jobs
    .command('adopt')
    .description(
      'Records jobs that no journal knows (made by a run without a journal, or a script that crashed) in the journal given by --journal: one job by ARN or id, or every job whose name starts with --name-prefix. The next run with that journal polls them and keeps their answers (a send of the same content then resolves from them); with --wait, this command does it now.',
    )
    .argument('[jobArn|jobId]', 'the job to adopt (or --name-prefix)')
    .option('--name-prefix <P>', "adopt every job whose name starts with P (a run's jobNamePrefix)")
    .addOption(
      checkedOption(
        '--since <TIME>',
        'with --name-prefix: only jobs submitted since TIME (ISO 8601 or epoch ms)',
        instant,
      ),
    )
    .option('--wait', 'wait until the adopted jobs end and their answers are in the journal')
    .option(
      '--s3-input-uri <URI>',
      "where a record sent again goes (env BEDROCK_BATCH_S3_INPUT_URI; default: beside the job's input)",
    )
    .option(
      '--s3-output-uri <URI>',
      "where its job writes (env BEDROCK_BATCH_S3_OUTPUT_URI; default: the job's output)",
    )
    .option('--role-arn <ARN>', "the service role for it (env BEDROCK_BATCH_ROLE_ARN; default: the job's)")
    .addOption(checkedOption('--poll-interval <S>', 'seconds between polls with --wait (default: 5)', seconds))
    .action(async (...args) => {
      const cmd = args.at(-1)
      const o = cmd.optsWithGlobals()
      await adoptJobs(admin(o), check, awsOptions(o), o, cmd.processedArgs[0])
    })
  jobs
    .command('results')
    .description("Writes a job's results joined with its input as JSONL, one line per record.")
    .argument(...JOB)
    .option('--out <FILE>', 'write them to FILE (default: stdout)')
    .action(withSource(results, resultsStored))
  return jobs
}

/**
 * The action of a subcommand that reads Bedrock (`fn(admin, options, id)`) or, with `--store` or
 * BEDROCK_BATCH_STORE_URL, a PostgreSQL store (`fromStore(reader, options, id)`; without
 * `fromStore`, Bedrock always).
 */
function withSource(fn, fromStore) {
  return async (...args) => {
    const cmd = args.at(-1)
    const o = cmd.optsWithGlobals()
    const reader = fromStore && storeReader(o)
    if (reader) await fromStore(reader, o, cmd.processedArgs[0])
    else await fn(admin(o), o, cmd.processedArgs[0])
  }
}

/** The addon's NativeStoreReader for `--journal`, `--store` or BEDROCK_BATCH_STORE_URL, or null. */
function storeReader(o) {
  return openReader(o)?.reader ?? null
}

/** The store's jobs, newest first (processed: the records answered, as the store counts them). */
async function storedJobs(reader) {
  const { jobs, error } = await reader.jobs()
  check(error)
  return jobs
    .map((j) => ({
      ...j,
      processedRecordCount: j.processedRecordCount ?? j.successRecordCount + j.errorRecordCount,
      createdAt: new Date(j.createdAt).toISOString(),
    }))
    .reverse()
}

/** The jobs `watch` shows, filtered as `list` filters them. */
function filtered(jobs, o) {
  let out = jobs
  if (o.status) out = out.filter((j) => j.status === o.status)
  if (o.nameContains) out = out.filter((j) => j.jobName.includes(o.nameContains))
  return out.slice(0, o.max)
}

/** Until Ctrl-C: an AbortSignal that SIGINT and SIGTERM abort. */
function interrupted() {
  const ac = new AbortController()
  const stop = () => ac.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return ac.signal
}

async function watchStored(reader, o) {
  const read = async () =>
    filtered(await storedJobs(reader), o).map((j) => ({ ...j, startedAt: Date.parse(j.createdAt) }))
  await watch({
    read,
    source: reader.location,
    intervalMs: o.interval * 1000,
    follow: Boolean(o.follow),
    signal: interrupted(),
  })
}

async function watchBedrock(a, o) {
  const read = async () =>
    (await listJobs(a, o)).map((j) => ({
      ...j,
      processedRecordCount: j.processedRecordCount ?? 0,
      totalRecordCount: j.totalRecordCount ?? 0,
      successRecordCount: j.successRecordCount ?? 0,
      errorRecordCount: j.errorRecordCount ?? 0,
      startedAt: j.submitTime ? Date.parse(j.submitTime) : undefined,
      endedAt: j.endTime ? Date.parse(j.endTime) : undefined,
    }))
  await watch({
    read,
    source: 'Bedrock',
    intervalMs: o.interval * 1000,
    follow: Boolean(o.follow),
    signal: interrupted(),
  })
}

async function listStored(reader, o) {
  let jobs = await storedJobs(reader)
  if (o.status) jobs = jobs.filter((j) => j.status === o.status)
  if (o.nameContains) jobs = jobs.filter((j) => j.jobName.includes(o.nameContains))
  if (o.max) jobs = jobs.slice(0, o.max)
  if (o.json) return console.log(JSON.stringify(jobs))
  if (jobs.length === 0) return console.log(`no jobs in ${reader.location}`)
  for (const j of jobs)
    console.log(
      `${j.status.padEnd(18)} ${j.jobName.padEnd(40)} ${counts(j)}  ${j.createdAt}\n${''.padEnd(19)}${j.jobArn}`,
    )
}

/** A stored job by ARN or id; a failure naming it when the store has none. */
async function storedJob(reader, id) {
  const job = (await storedJobs(reader)).find((j) => j.jobArn === id || j.jobArn.endsWith(`/${id}`))
  if (!job) throw new Error(`ResourceNotFoundException: no job ${id} in ${reader.location}`)
  return job
}

async function showStored(reader, o, id) {
  if (o.wait)
    throw new Error('--wait follows a job on Bedrock: run it without --store (and without BEDROCK_BATCH_STORE_URL)')
  const j = await storedJob(reader, id)
  if (o.json) return console.log(JSON.stringify(j))
  console.log(`${j.jobName}
  arn       ${j.jobArn}
  model     ${j.modelId}
  status    ${j.status}
  records   ${counts(j)}
  created   ${j.createdAt}
  store     ${reader.location}`)
}

async function resultsStored(reader, o, id) {
  const job = await storedJob(reader, id)
  const lines = []
  let after = null
  let succeeded = 0
  let failed = 0
  for (;;) {
    const page = await reader.results(job.jobArn, after, 1000)
    check(page.error)
    for (const r of page.results) {
      const line = { recordId: r.recordId, idempotencyKey: r.idempotencyKey }
      if (r.output) {
        const text = r.output.toString('utf8')
        try {
          line.modelOutput = JSON.parse(text)
        } catch {
          line.modelOutput = text
        }
        succeeded++
      } else {
        line.error = { name: r.errorName, message: r.errorMessage }
        failed++
      }
      lines.push(`${JSON.stringify(line)}\n`)
    }
    if (page.results.length < 1000) break
    after = page.results.at(-1).record
  }
  const data = lines.join('')
  if (o.out) fs.writeFileSync(o.out, data)
  else process.stdout.write(data)
  const summary = { records: succeeded + failed, succeeded, failed, out: o.out || null }
  if (o.json && o.out) console.log(JSON.stringify(summary))
  else
    process.stderr.write(
      `${succeeded + failed} answers in the store: ${succeeded} succeeded, ${failed} failed${o.out ? ` -> ${o.out}` : ''}\n`,
    )
}

/**
 * The addon's NativeAdmin, built from options as the client takes them; region and defaults are
 * resolved by the engine. The S3 endpoint is passed explicitly (from the environment too) because
 * an explicit S3 endpoint is what turns on the path-style addressing the emulator needs.
 */
/** Where the `jobs` commands reach Bedrock and S3, and in which region. */
function awsOptions(o) {
  const options = {
    endpoints: {
      bedrock: o.endpointUrl || process.env.AWS_ENDPOINT_URL_BEDROCK || undefined,
      s3: o.s3EndpointUrl || process.env.AWS_ENDPOINT_URL_S3 || undefined,
    },
  }
  if (o.region) options.region = o.region
  return options
}

function admin(o) {
  const { NativeAdmin } = require('../binding.js')
  const { fromNative } = require('../lib/errors.js')
  const options = awsOptions(o)
  try {
    return new NativeAdmin(options)
  } catch (thrown) {
    throw namedFailure(fromNative(thrown))
  }
}

/** Throws the exception of an engine error (data, from a NativeAdmin result), when there is one. */
function check(error) {
  if (error) {
    const { toException } = require('../lib/errors.js')
    throw namedFailure(toException(error))
  }
}

async function getJob(a, id) {
  const { job, error } = await a.getJob(id)
  check(error)
  return job
}

function counts(j) {
  const n = (v) => (v == null ? '-' : String(v))
  return `${n(j.processedRecordCount)}/${n(j.totalRecordCount)} processed, ${n(j.successRecordCount)} ok, ${n(j.errorRecordCount)} errors`
}

function bar(done, total, width = 30) {
  const f = total > 0 ? Math.min(1, done / total) : 0
  const full = Math.round(f * width)
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${Math.round(f * 100)}%`
}

/** Bedrock's jobs, newest first, filtered by `o.status` and `o.nameContains`; at most `o.max` (all without). */
async function listJobs(a, o) {
  const jobs = []
  let nextToken
  do {
    const page = await a.listJobs({
      statusEquals: o.status,
      nameContains: o.nameContains,
      maxResults: Math.min(o.max || 100, 100),
      nextToken,
    })
    check(page.error)
    jobs.push(...page.jobs)
    nextToken = page.nextToken
  } while (nextToken && jobs.length < (o.max || Infinity))
  return o.max ? jobs.slice(0, o.max) : jobs
}

async function list(a, o) {
  const shown = await listJobs(a, o)
  if (o.json) return console.log(JSON.stringify(shown))
  if (shown.length === 0) return console.log('no jobs')
  for (const j of shown)
    console.log(
      `${j.status.padEnd(18)} ${j.jobName.padEnd(40)} ${counts(j)}  ${j.submitTime || ''}\n${''.padEnd(19)}${j.jobArn}`,
    )
}

async function show(a, o, id) {
  let j = await getJob(a, id)
  if (o.wait) {
    const tty = process.stderr.isTTY && !o.json
    let last = ''
    while (!TERMINAL.has(j.status)) {
      const line = `${j.status} ${bar(j.processedRecordCount || 0, j.totalRecordCount || 0)} ${counts(j)}`
      if (tty) process.stderr.write(`\r${line}\x1b[K`)
      else if (line !== last) process.stderr.write(`${line}\n`)
      last = line
      await new Promise((r) => setTimeout(r, o.pollInterval * 1000))
      j = await getJob(a, id)
    }
    if (tty) process.stderr.write('\r\x1b[K')
  }
  if (o.json) return console.log(JSON.stringify(j))
  console.log(`${j.jobName}
  arn       ${j.jobArn}
  model     ${j.modelId}
  status    ${j.status}${j.message ? `: ${j.message}` : ''}
  records   ${counts(j)}
  input     ${j.inputUri || '-'}
  output    ${j.outputUri || '-'}
  submitted ${j.submitTime || '-'}
  ended     ${j.endTime || '-'}`)
}

async function stop(a, o, id) {
  check(await a.stopJob(id))
  const j = await getJob(a, id)
  if (o.json) return console.log(JSON.stringify(j))
  console.log(`${j.jobName}: ${j.status}`)
}

async function results(a, o, id) {
  const r = await a.jobResults(id)
  check(r.error)
  if (o.out) fs.writeFileSync(o.out, r.data)
  else process.stdout.write(r.data)
  const summary = {
    records: r.records,
    succeeded: r.succeeded,
    failed: r.failed,
    missing: r.missing,
    out: o.out || null,
  }
  if (o.json && o.out) console.log(JSON.stringify(summary))
  else
    process.stderr.write(
      `${r.records} records: ${r.succeeded} succeeded, ${r.failed} failed, ${r.missing} without output${o.out ? ` -> ${o.out}` : ''}\n`,
    )
}

module.exports = { jobsCommand }
