'use strict'
// `bedrock-batch-bridge dashboard`: serve's dashboard page (/_bridge/, dashboard.json, metrics) for
// a journal or a PostgreSQL group, read from beside the processes that own it while they keep
// running: no group lead and no journal lock is taken. The store is read every --interval seconds.

const { CliCommand, UsageError } = require('./command.js')
const { openReader, shellWord } = require('./reader.js')
const { checkedOption, seconds, wholeNumber } = require('./values.js')

function collect(value, previous) {
  return [...previous, value]
}

/** The command (its options, their defaults and its help are defined here). */
function dashboardCommand() {
  return new CliCommand('dashboard')
    .summary("a live dashboard page of a journal's or a PostgreSQL group's jobs, beside the processes that own it")
    .description(
      "Serves the dashboard page (/_bridge/, /_bridge/dashboard.json, /_bridge/metrics) of a journal (--journal) or a PostgreSQL group (--store, --group), read every --interval seconds while the processes that own it keep running: it takes no group lead and no journal lock. It shows the jobs (progress, counts, ETA, failed records by error), per model totals, the committed spend the store keeps and a group's member processes; requests waiting inside those processes are not in the store, so not on the page.",
    )
    .option('--journal <FILE>', 'the SQLite journal to read')
    .option(
      '--store <URL>',
      'the PostgreSQL store to read: postgres://user:password@host:port/db (env BEDROCK_BATCH_STORE_URL)',
    )
    .option('--group <NAME>', 'the store group (default: "default")')
    .option('--host <HOST>', 'address to listen on (default: 127.0.0.1; anything else needs --auth or --api-key)')
    .addOption(checkedOption('--port <N>', 'port to listen on (default: 8788; 0: a free port)', wholeNumber()))
    .addOption(checkedOption('--interval <S>', 'seconds between reads of the store', seconds).default(5))
    .option(
      '--auth <ACCESS_KEY_ID:SECRET_ACCESS_KEY>',
      'credentials whose SigV4-signed requests may read the page (repeatable; env BEDROCK_BATCH_SERVE_AUTH, comma-separated)',
      collect,
      [],
    )
    .option(
      '--api-key <KEY>',
      'a key that may read the page, as "Authorization: Bearer KEY" or "x-api-key: KEY" (repeatable; env BEDROCK_BATCH_SERVE_API_KEYS, comma-separated)',
      collect,
      [],
    )
    .option('--region <R>', 'the region of --auth signatures (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)')
    .addHelpText(
      'after',
      `
Prints the page's URL on stdout once it listens. Stop it with Ctrl-C; the store is never written.`,
    )
    .action(dashboard)
}

const listed = (name) =>
  (process.env[name] || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

async function dashboard(flags) {
  const opened = openReader(flags)
  if (!opened)
    throw new UsageError(
      'dashboard needs a store to read: --journal FILE, or --store postgres://... [--group NAME] (or BEDROCK_BATCH_STORE_URL)',
    )
  const { startDashboard } = require('../lib/dashboard/server.js')
  const { reader, kind, flags: storeFlags } = opened
  let server
  try {
    server = await startDashboard(reader, {
      kind,
      host: flags.host ?? '127.0.0.1',
      port: flags.port ?? 8788,
      auth: [...listed('BEDROCK_BATCH_SERVE_AUTH'), ...flags.auth],
      apiKeys: [...listed('BEDROCK_BATCH_SERVE_API_KEYS'), ...flags.apiKey],
      region: flags.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
      intervalMs: flags.interval * 1000,
      commands: (job) => [
        `bedrock-batch-bridge jobs show ${shellWord(job.jobArn)} ${storeFlags.join(' ')}`,
        `bedrock-batch-bridge jobs results ${shellWord(job.jobArn)} ${storeFlags.join(' ')} --out results.jsonl`,
      ],
    })
  } catch (err) {
    throw new UsageError(
      err?.name && err.name !== 'TypeError' && err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message,
    )
  }
  console.log(`${server.url}/_bridge/`)
  console.error(
    `bedrock-batch-bridge dashboard: ${kind === 'postgres' ? 'PostgreSQL group' : 'journal'} ${reader.location}, read every ${flags.interval} s (no lock taken); page at ${server.url}/_bridge/, metrics at ${server.url}/_bridge/metrics`,
  )
  const keepAlive = setInterval(() => {}, 1 << 30)
  const shutdown = async () => {
    await server.stop()
    clearInterval(keepAlive)
    process.exit(0)
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

module.exports = { dashboardCommand }
