'use strict'
// `bedrock-batch-bridge serve`: a local HTTP server that speaks the Bedrock runtime wire and runs
// the calls it gets as batch inference jobs, for programs in any language (every AWS SDK honours
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME).

const fs = require('node:fs')

const { TERMINAL } = require('../lib/job-status.js')
const { CliCommand, UsageError } = require('./command.js')
const { checkedOption, oneOf, seconds, usd, wholeNumber } = require('./values.js')

/** The command (its options, their defaults and its help are defined here). */
function serveCommand() {
  return new CliCommand('serve')
    .summary('serve the Bedrock runtime API locally; the calls it gets run as batch jobs')
    .description(
      'Serves the Bedrock runtime API (InvokeModel, Converse and their streaming twins) on a local port, over HTTP/1.1 and cleartext HTTP/2, and runs the calls it gets as batch inference jobs. Point any AWS SDK at it with AWS_ENDPOINT_URL_BEDROCK_RUNTIME. The same port speaks the OpenAI (base URL <url>/v1) and Anthropic (base URL <url>) wires for their SDKs.',
    )
    .option(
      '--config <FILE>',
      "a JSON file of the client's options (batch, journal, mode, region, endpoints, credentials, auth, ...)",
    )
    .addOption(checkedOption('--port <N>', 'port to listen on (default: 8787; 0: a free port)', wholeNumber()))
    .option('--host <HOST>', 'address to listen on (default: 127.0.0.1; anything else needs --auth or --api-key)')
    .option(
      '--auth <ACCESS_KEY_ID:SECRET_ACCESS_KEY>',
      "callers' credentials whose SigV4 signatures are checked (repeatable; env BEDROCK_BATCH_SERVE_AUTH, comma-separated)",
      collect,
      [],
    )
    .option(
      '--api-key <KEY>',
      'an API key the OpenAI and Anthropic wires (/v1/...) take, as "Authorization: Bearer KEY" or "x-api-key: KEY" (repeatable; env BEDROCK_BATCH_SERVE_API_KEYS, comma-separated; config: apiKeys)',
      collect,
      [],
    )
    .option(
      '--model-map <NAME=MODEL_ID>',
      'a model name the OpenAI and Anthropic wires take for a Bedrock model id, e.g. gpt-4o-mini=anthropic.claude-3-haiku-20240307-v1:0 (repeatable; config: modelMap)',
      collect,
      [],
    )
    .option(
      '--ignore-client-timeout',
      "X-Stainless-Timeout (the OpenAI and Anthropic SDKs' timeout) is not a call's deadline: calls wait for their batch job however long their client waits (config: ignoreClientTimeout)",
    )
    .option('--region <R>', "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the AWS profile's region)")
    .option('--endpoint-url <URL>', 'Bedrock control plane (default: AWS_ENDPOINT_URL_BEDROCK, else AWS)')
    .option('--s3-endpoint-url <URL>', 'S3 (default: AWS_ENDPOINT_URL_S3, else AWS)')
    .option('--runtime-endpoint-url <URL>', 'the Bedrock runtime for calls that go on-demand (default: AWS)')
    .addOption(
      checkedOption(
        '--mode <M>',
        'batch, direct or openai (default: batch; env BEDROCK_BATCH_MODE)',
        oneOf('batch', 'direct', 'openai'),
      ),
    )
    .option('--s3-input-uri <URI>', 'where input JSONL goes (env BEDROCK_BATCH_S3_INPUT_URI)')
    .option('--s3-output-uri <URI>', 'where Bedrock writes output (env BEDROCK_BATCH_S3_OUTPUT_URI)')
    .option('--role-arn <ARN>', 'the service role Bedrock assumes (env BEDROCK_BATCH_ROLE_ARN)')
    .addOption(
      checkedOption('--min-batch-size <N>', 'records below which belowMinimum decides (default: 100)', wholeNumber(1)),
    )
    .addOption(
      checkedOption(
        '--max-batch-size <N>',
        'records per job at most (default: 1000; env BEDROCK_BATCH_MAX_BATCH_SIZE)',
        wholeNumber(1),
      ),
    )
    .addOption(
      checkedOption(
        '--batch-timeout <S>',
        'flush this long after the oldest waiting call (default: 60; env BEDROCK_BATCH_TIMEOUT)',
        seconds,
      ),
    )
    .addOption(checkedOption('--poll-interval <S>', 'seconds between job polls (default: 5)', seconds))
    .addOption(
      checkedOption('--max-concurrent-jobs <N>', 'submitted + running jobs per model (default: 20)', wholeNumber(1)),
    )
    .option('--journal <FILE>', 'the SQLite journal: calls and jobs survive a restart')
    .option(
      '--store <URL>',
      'a PostgreSQL store instead of the journal: postgres://user:password@host:port/db (env BEDROCK_BATCH_STORE_URL)',
    )
    .option('--group <NAME>', 'the store group whose batches this server shares (default: "default")')
    .addOption(
      checkedOption(
        '--max-cost-usd <USD>',
        'cost cap: a batch or on-demand call whose upper-bound cost would take the committed spend past it is not sent (CostLimitExceededException, HTTP 402); every call must then set its max tokens (config: maxCostUsd)',
        usd,
      ),
    )
    .addOption(
      checkedOption(
        '--deadline <S>',
        'a call that gives no X-Bedrock-Batch-Deadline header must be answered within this many seconds: when its job has not answered by then less batch.fallbackMargin (60 s), it is sent on-demand (config: batch.deadline)',
        seconds,
      ),
    )
    .option(
      '--dry-run',
      'a dry run: calls are held and batches formed, nothing is uploaded, created or sent; GET /_bridge/plan gives the plan (config: dryRun)',
    )
    .option(
      '--drain',
      'on SIGTERM or SIGINT, wait for running jobs before exiting (default: leave them to the journal)',
    )
    .option('--quiet', 'no progress line')
    .addHelpText(
      'after',
      `
Calls wait for their batch job (minutes to hours): raise your SDK's read timeout (see the README).
A retried call (same amz-sdk-invocation-id) joins the call it retries: never a second record.
The OpenAI wire (POST /v1/chat/completions, /v1/embeddings, GET /v1/models) and the Anthropic wire
(POST /v1/messages) share the port (docs/wires.md); their SDKs' retries (same route, key and body) join too.
X-Bedrock-Batch-Deadline (epoch milliseconds or an ISO 8601 time) on a call: when its job has not answered
batch.fallbackMargin (60 s) before it, the call is sent on-demand (Flex where the model offers it).
GET /_bridge/stats returns the client's stats() as JSON (with --max-cost-usd, spend: { committedUsd, maxCostUsd }).
GET /_bridge/metrics returns Prometheus metrics (text format 0.0.4; docs/observability.md).
GET /_bridge/ is a live dashboard page: jobs with progress and ETA, models, spend, a timeline, the store.
With --dry-run, GET /_bridge/plan returns the plan of the calls held so far as JSON (jobs, records, padded
records, requests by tier, input tokens, output upper bound, cost at the chosen tiers and all standard)
and ends those calls with DryRunException (HTTP 400); later calls are held for the next plan.`,
    )
    .action(serve)
}

function collect(value, previous) {
  return [...previous, value]
}

/** The client's options from the config file, the environment and the flags (flags win). */
function options(flags) {
  let config = {}
  if (flags.config) {
    let text
    try {
      text = fs.readFileSync(flags.config, 'utf8')
    } catch (err) {
      throw new UsageError(`--config: cannot read ${flags.config}: ${err.message}`)
    }
    try {
      config = JSON.parse(text)
    } catch (err) {
      throw new UsageError(`--config: ${flags.config} is not JSON: ${err.message}`)
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config))
      throw new UsageError(`--config: ${flags.config} must hold a JSON object of options`)
  }
  const out = { ...config, batch: { ...(config.batch || {}) }, endpoints: { ...(config.endpoints || {}) } }
  const envAuth = (process.env.BEDROCK_BATCH_SERVE_AUTH || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  // One entry (a string or { accessKeyId, secretAccessKey }) counts as a list of one, as in startServer.
  out.auth = [...[].concat(config.auth ?? []), ...envAuth, ...flags.auth]
  const envKeys = (process.env.BEDROCK_BATCH_SERVE_API_KEYS || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  out.apiKeys = [...[].concat(config.apiKeys ?? []), ...envKeys, ...flags.apiKey]
  const modelMap = { ...(config.modelMap || {}) }
  for (const entry of flags.modelMap) {
    const i = entry.indexOf('=')
    if (i <= 0 || i === entry.length - 1)
      throw new UsageError(`--model-map: ${JSON.stringify(entry)} is not NAME=MODEL_ID`)
    modelMap[entry.slice(0, i).trim()] = entry.slice(i + 1).trim()
  }
  out.modelMap = modelMap
  if (flags.ignoreClientTimeout) out.ignoreClientTimeout = true
  out.host = flags.host ?? config.host ?? '127.0.0.1'
  out.port = flags.port ?? config.port ?? 8787
  if (flags.region) out.region = flags.region
  if (flags.mode) out.mode = flags.mode
  if (flags.endpointUrl) out.endpoints.bedrock = flags.endpointUrl
  if (flags.s3EndpointUrl) out.endpoints.s3 = flags.s3EndpointUrl
  if (flags.runtimeEndpointUrl) out.endpoints.bedrockRuntime = flags.runtimeEndpointUrl
  const batchFlags = {
    s3InputUri: flags.s3InputUri,
    s3OutputUri: flags.s3OutputUri,
    roleArn: flags.roleArn,
    minBatchSize: flags.minBatchSize,
    maxBatchSize: flags.maxBatchSize,
    batchTimeout: flags.batchTimeout,
    pollInterval: flags.pollInterval,
    maxConcurrentJobs: flags.maxConcurrentJobs,
    deadline: flags.deadline,
  }
  for (const [k, v] of Object.entries(batchFlags)) if (v !== undefined) out.batch[k] = v
  if (flags.maxCostUsd !== undefined) out.maxCostUsd = flags.maxCostUsd
  if (flags.dryRun) out.dryRun = true
  if (flags.journal) out.journal = { ...(config.journal || {}), path: flags.journal }
  if (flags.store || flags.group) {
    const store = { ...(config.store || {}) }
    if (flags.store) store.url = flags.store
    else if (!store.url && process.env.BEDROCK_BATCH_STORE_URL) store.url = process.env.BEDROCK_BATCH_STORE_URL
    if (flags.group) store.group = flags.group
    out.store = store
  }
  if (Object.keys(out.endpoints).length === 0) delete out.endpoints
  if (Object.keys(out.batch).length === 0 && out.mode !== 'batch' && !config.batch) delete out.batch
  return out
}

/** One progress line: queued, in flight, jobs by state, tokens. */
function progressLine(s) {
  const running = s.jobs.filter((j) => !TERMINAL.has(j.status)).length
  const spend = s.spend ? `  spend $${s.spend.committedUsd.toFixed(6)} of $${s.spend.maxCostUsd}` : ''
  return `queued ${s.queued}  in flight ${s.inFlight}  jobs ${s.jobs.length} (${running} running)  on-demand ${s.sentDirect}  tokens ${s.tokens.input}/${s.tokens.output}${spend}`
}

async function serve(flags) {
  const { startServer } = require('../lib/server.js')
  const opts = options(flags)
  // This process's own SDK calls must not come back to it: the variable callers use to reach
  // `serve` is not the engine's runtime endpoint (--runtime-endpoint-url is).
  if (process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME) {
    console.error(
      'bedrock-batch-bridge serve: AWS_ENDPOINT_URL_BEDROCK_RUNTIME is ignored here (use --runtime-endpoint-url)',
    )
    delete process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME
  }
  let server
  try {
    server = await startServer(opts)
  } catch (err) {
    throw new UsageError(
      err?.name && err.name !== 'TypeError' && err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message,
    )
  }
  console.log(`AWS_ENDPOINT_URL_BEDROCK_RUNTIME=${server.url}`)
  console.error(
    `bedrock-batch-bridge serve: Bedrock runtime on ${server.url} (HTTP/1.1 and h2c), region ${server.client.config.region}${opts.auth.length ? ', signatures checked' : ''}; stats at ${server.url}/_bridge/stats, dashboard at ${server.url}/_bridge/`,
  )
  console.error(
    `bedrock-batch-bridge serve: OpenAI (base URL ${server.url}/v1) and Anthropic (base URL ${server.url}) wires${opts.apiKeys.length ? `, ${opts.apiKeys.length} API key(s)` : ', no API key'}`,
  )
  if (opts.dryRun)
    console.error(
      `bedrock-batch-bridge serve: a dry run: calls are held, nothing is sent; the plan at ${server.url}/_bridge/plan`,
    )
  if (opts.maxCostUsd !== undefined)
    console.error(`bedrock-batch-bridge serve: cost cap $${opts.maxCostUsd} (work that would cross it is not sent)`)
  if (process.stderr.isTTY && !flags.quiet) {
    server.client.on('progress', (s) => process.stderr.write(`\r\x1b[K${progressLine(s)}`))
  }
  // The native engine does not hold the event loop; this timer does, until a signal arrives.
  const keepAlive = setInterval(() => {}, 1 << 30)
  let stopping = false
  const shutdown = async (signal) => {
    if (stopping) return
    stopping = true
    console.error(
      `\nbedrock-batch-bridge serve: ${signal}: ${flags.drain ? 'waiting for running jobs' : 'stopping (running jobs stay in the journal)'}`,
    )
    await server.stop({ drain: Boolean(flags.drain) })
    clearInterval(keepAlive)
    process.exit(0)
  }
  process.once('SIGINT', () => shutdown('SIGINT'))
  process.once('SIGTERM', () => shutdown('SIGTERM'))
}

module.exports = { serveCommand, options, progressLine }
