'use strict'
// `bedrock-batch-bridge jobs list|show|stop|results`: look at batch inference jobs on Bedrock (or
// on any endpoint given by --endpoint-url / AWS_ENDPOINT_URL_BEDROCK, such as the emulator).

const fs = require('node:fs')

const { parseArgs } = require('./args.js')

const USAGE = `usage: bedrock-batch-bridge jobs <list|show|stop|results> [options]

  jobs list [--status S] [--name-contains X] [--max N]   jobs, newest first
  jobs show <jobArn|jobId> [--wait] [--poll-interval S]   one job; --wait: until it ends, with progress
                                                          (polled every S seconds, default 2)
  jobs stop <jobArn|jobId>                                stop a job
  jobs results <jobArn|jobId> [--out FILE]                its results joined with its input, as JSONL
                                                          (stdout unless --out; one line per record)

options (every subcommand):
  --region R              default: AWS_REGION, AWS_DEFAULT_REGION, the AWS profile's region
  --endpoint-url URL      Bedrock control plane (default: AWS_ENDPOINT_URL_BEDROCK, else AWS)
  --s3-endpoint-url URL   S3 (default: AWS_ENDPOINT_URL_S3, else AWS)
  --json                  machine-readable output
  --help                  this text

Credentials come from the AWS default chain (environment, profile, SSO, ...).`

const TERMINAL = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']

const OPTIONS = {
  '--region': { key: 'region', type: 'string' },
  '--endpoint-url': { key: 'endpoint', type: 'string' },
  '--s3-endpoint-url': { key: 's3Endpoint', type: 'string' },
  '--status': { key: 'status', type: 'string' },
  '--name-contains': { key: 'nameContains', type: 'string' },
  '--max': { key: 'max', type: 'int', min: 1 },
  '--out': { key: 'out', type: 'string' },
  '--wait': { key: 'wait', type: 'flag' },
  '--poll-interval': { key: 'pollInterval', type: 'seconds' },
  '--json': { key: 'json', type: 'flag' },
}

/**
 * The addon's NativeAdmin, built from options as the client takes them (the engine resolves the
 * region and the defaults). The S3 endpoint is passed from the environment too: an explicit S3
 * endpoint is what turns on the path-style addressing the emulator needs.
 */
function admin(o) {
  const { NativeAdmin } = require('../binding.js')
  const { fromNative } = require('../lib/errors.js')
  const options = {
    endpoints: {
      bedrock: o.endpoint || process.env.AWS_ENDPOINT_URL_BEDROCK || undefined,
      s3: o.s3Endpoint || process.env.AWS_ENDPOINT_URL_S3 || undefined,
    },
  }
  if (o.region) options.region = o.region
  try {
    return new NativeAdmin(options)
  } catch (thrown) {
    throw named(fromNative(thrown))
  }
}

/** The failure to report for an exception, its name first: `ResourceNotFoundException: ...`. */
function named(err) {
  return new Error(`${err?.name}: ${err?.message}`, { cause: err })
}

/** Throws the exception of an engine error (data, from a NativeAdmin result), when there is one. */
function check(error) {
  if (error) {
    const { toException } = require('../lib/errors.js')
    throw named(toException(error))
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

async function list(a, o) {
  const jobs = []
  let nextToken
  do {
    const page = await a.listJobs({ statusEquals: o.status, nameContains: o.nameContains, maxResults: Math.min(o.max || 100, 100), nextToken })
    check(page.error)
    jobs.push(...page.jobs)
    nextToken = page.nextToken
  } while (nextToken && jobs.length < (o.max || Infinity))
  const shown = o.max ? jobs.slice(0, o.max) : jobs
  if (o.json) return console.log(JSON.stringify(shown))
  if (shown.length === 0) return console.log('no jobs')
  for (const j of shown) console.log(`${j.status.padEnd(18)} ${j.jobName.padEnd(40)} ${counts(j)}  ${j.submitTime || ''}\n${''.padEnd(19)}${j.jobArn}`)
}

async function show(a, o, id) {
  let j = await getJob(a, id)
  if (o.wait) {
    const tty = process.stderr.isTTY && !o.json
    let last = ''
    while (!TERMINAL.includes(j.status)) {
      const line = `${j.status} ${bar(j.processedRecordCount || 0, j.totalRecordCount || 0)} ${counts(j)}`
      if (tty) process.stderr.write(`\r${line}\x1b[K`)
      else if (line !== last) process.stderr.write(`${line}\n`)
      last = line
      await new Promise((r) => setTimeout(r, (o.pollInterval || 2) * 1000))
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
  const summary = { records: r.records, succeeded: r.succeeded, failed: r.failed, missing: r.missing, out: o.out || null }
  if (o.json && o.out) console.log(JSON.stringify(summary))
  else process.stderr.write(`${r.records} records: ${r.succeeded} succeeded, ${r.failed} failed, ${r.missing} without output${o.out ? ` -> ${o.out}` : ''}\n`)
}

async function jobs(argv) {
  const [sub, ...rest] = argv
  const o = parseArgs(rest, OPTIONS, { json: false }, { positional: true })
  if (!sub || sub === '--help' || sub === '-h' || o.help) return console.log(USAGE)
  const commands = { list, show, stop, results }
  if (!commands[sub]) throw new Error(`unknown jobs command ${JSON.stringify(sub)}\n\n${USAGE}`)
  const [id] = o.positional
  if (sub !== 'list' && !id) throw new Error(`jobs ${sub} needs a job ARN or id\n\n${USAGE}`)
  await commands[sub](admin(o), o, id)
}

module.exports = { jobs, USAGE }
