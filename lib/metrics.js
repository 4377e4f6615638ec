'use strict'
// Prometheus metrics: the door's own counts of settled requests (a latency histogram of
// send-to-settle seconds and error counts, by model, operation and outcome), and the text
// exposition format 0.0.4 of those and of `stats()`. What is counted per request is a slot in
// typed arrays (the pending table keeps each request's send time and tag): no object per request.
// Labels carry model ids, operation names, statuses and exception names only: never a request
// body, a key or a credential.

/** Upper bounds (seconds) of the latency histogram's buckets: an on-demand answer to a day-long job. */
const BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400]
const OPERATIONS = ['InvokeModel', 'Converse', 'InvokeModelWithResponseStream', 'ConverseStream']
const OPERATION_INDEX = new Map(OPERATIONS.map((op, i) => [op, i]))
const OUTCOMES = ['success', 'error', 'aborted']
const SUCCESS = 0
const ERROR = 1
const ABORTED = 2
/** Distinct model ids (and exception names) kept as label values; past these (and for a model named `other`), `other`. */
const MAX_MODELS = 200
const MAX_ERROR_SERIES = 1000
const OTHER = 'other'

/** The door's counts of settled requests. */
class RequestMetrics {
  constructor() {
    this._models = []
    this._modelIndex = new Map()
    this._lastModel = undefined
    this._lastTag = 0
    // The index of `other`, once the cap is reached.
    this._other = undefined
    // By series (tag * OUTCOMES.length + outcome; tag = model * OPERATIONS.length + operation):
    // bucket counts (not cumulative; the last is +Inf), sums and counts; grown as models come.
    this._buckets = []
    this._sums = []
    this._errors = new Map()
  }

  /** The tag of a request of `operation` on `modelId`: a small number, kept beside its send time. */
  tag(modelId, operation) {
    const op = operation === 'InvokeModel' ? 0 : (OPERATION_INDEX.get(operation) ?? 0)
    if (modelId === this._lastModel) return this._lastTag + op
    let m = this._modelIndex.get(modelId)
    if (m === undefined) {
      if (this._models.length < MAX_MODELS && typeof modelId === 'string' && modelId !== OTHER) {
        // An empty model id is an empty label value (Prometheus reads it as no label).
        m = this._models.length
        this._models.push(modelId)
        this._modelIndex.set(modelId, m)
      } else {
        // Past the cap nothing more is kept per model id (serve's callers choose them).
        if (this._other === undefined) this._other = this._addOther()
        m = this._other
      }
    }
    this._lastModel = modelId
    this._lastTag = m * OPERATIONS.length
    return this._lastTag + op
  }

  _addOther() {
    this._models.push(OTHER)
    return this._models.length - 1
  }

  /** Counts a settled request: `outcome` (SUCCESS, ERROR, ABORTED) after `seconds`; `errorName` for a failure. */
  observe(tag, outcome, seconds, errorName) {
    const series = tag * OUTCOMES.length + outcome
    let counts = this._buckets[series]
    if (counts === undefined) {
      while (this._buckets.length <= series) {
        this._buckets.push(undefined)
        this._sums.push(0)
      }
      counts = new Float64Array(BUCKETS.length + 1)
      this._buckets[series] = counts
    }
    let b = 0
    while (b < BUCKETS.length && seconds > BUCKETS[b]) b++
    counts[b]++
    this._sums[series] += seconds
    if (outcome === ERROR) this._error(tag, errorName)
  }

  _error(tag, name) {
    let key = `${tag}\u0000${typeof name === 'string' && name !== '' ? name : 'Error'}`
    if (!this._errors.has(key) && this._errors.size >= MAX_ERROR_SERIES) key = `${tag}\u0000${OTHER}`
    this._errors.set(key, (this._errors.get(key) ?? 0) + 1)
  }

  /** The model and operation of a request tag: `{ model, operation }`. */
  labels(tag) {
    return { model: this._models[Math.floor(tag / OPERATIONS.length)], operation: OPERATIONS[tag % OPERATIONS.length] }
  }

  /** Each series with requests: `{ model, operation, outcome, counts, sum, count }`. */
  *series() {
    for (let s = 0; s < this._buckets.length; s++) {
      const counts = this._buckets[s]
      if (counts === undefined) continue
      let count = 0
      for (const c of counts) count += c
      const tag = Math.floor(s / OUTCOMES.length)
      yield { ...this.labels(tag), outcome: OUTCOMES[s % OUTCOMES.length], counts, sum: this._sums[s], count }
    }
  }

  /** Each error count: `{ model, operation, error, count }`. */
  *errors() {
    for (const [key, count] of this._errors) {
      const i = key.indexOf('\u0000')
      yield { ...this.labels(Number(key.slice(0, i))), error: key.slice(i + 1), count }
    }
  }
}

// ---------------------------------------------------------------------------
// The text exposition format 0.0.4

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** A label value as the format quotes it: backslash, double quote and line feed escaped. */
function escapeLabel(value) {
  return String(value).replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))
}

/** A HELP text: backslash and line feed escaped. */
function escapeHelp(text) {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'))
}

function formatValue(v) {
  if (Number.isFinite(v)) return String(v)
  if (Number.isNaN(v)) return 'NaN'
  return v > 0 ? '+Inf' : '-Inf'
}

function formatLabels(labels) {
  const keys = Object.keys(labels)
  if (keys.length === 0) return ''
  return `{${keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(',')}}`
}

/** Writes metric families: `family(name, type, help)` then `sample(labels, value, suffix?)`. */
class Exposition {
  constructor() {
    this._lines = []
    this._name = null
  }

  family(name, type, help) {
    this._name = name
    this._lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
    return this
  }

  sample(labels, value, suffix = '') {
    this._lines.push(`${this._name}${suffix}${formatLabels(labels)} ${formatValue(value)}`)
    return this
  }

  text() {
    return `${this._lines.join('\n')}\n`
  }
}

/** Counts by the keys `keyOf(item)` gives (joined label values), as `[labels, count]`. */
function countBy(items, labelsOf) {
  const out = new Map()
  for (const item of items) {
    const labels = labelsOf(item)
    const key = JSON.stringify(labels)
    const entry = out.get(key)
    if (entry) entry[1]++
    else out.set(key, [labels, 1])
  }
  return [...out.values()]
}

/** The job and record gauges of `jobs` (as `stats().jobs` gives them); `whose`: "this client", ... */
function jobFamilies(e, jobs, whose) {
  e.family(
    'bedrock_batch_jobs',
    'gauge',
    `Batch inference jobs of ${whose}, by model and status (Submitted, InProgress, Completed, ...).`,
  )
  for (const [labels, n] of countBy(jobs, (j) => ({ model: j.modelId, status: j.status }))) e.sample(labels, n)
  e.family(
    'bedrock_batch_job_records',
    'gauge',
    `Records of the jobs of ${whose}, by model and outcome: success, error (processed with an error), pending (not processed yet), from the jobs' counts.`,
  )
  const records = new Map()
  for (const j of jobs) {
    const r = records.get(j.modelId) ?? { success: 0, error: 0, pending: 0 }
    r.success += j.successRecordCount
    r.error += j.errorRecordCount
    r.pending += Math.max(0, j.totalRecordCount - j.processedRecordCount)
    records.set(j.modelId, r)
  }
  for (const [model, r] of records)
    for (const outcome of ['success', 'error', 'pending']) e.sample({ model, outcome }, r[outcome])
}

/**
 * The failed records of `jobs` by model and error name; `codes(job)`: the job's `[{ name, count }]`
 * (the engine's count as it read the output, or the answers a store keeps).
 */
function recordErrorFamily(e, jobs, whose, codes) {
  e.family(
    'bedrock_batch_job_record_errors',
    'gauge',
    `Records the jobs of ${whose} answered with an error, by model and error name (ValidationException, ModelTimeoutException, ...), as their output was read.`,
  )
  const counts = new Map()
  for (const j of jobs)
    for (const c of codes(j)) {
      const key = `${j.modelId}\u0000${c.name}`
      const entry = counts.get(key) ?? { labels: { model: j.modelId, error: c.name }, n: 0 }
      entry.n += c.count
      counts.set(key, entry)
    }
  for (const { labels, n } of counts.values()) e.sample(labels, n)
}

/** Where each model's requests are now (`load`: door.requestsByModel()), by model and state. */
function loadFamily(e, load) {
  e.family(
    'bedrock_batch_model_requests',
    'gauge',
    "Requests held by this client now, by model and state: queued (waiting in the client, for a job slot included), in_jobs, on_demand, in_group (handed to the group's leader).",
  )
  for (const l of load)
    for (const [state, key] of [
      ['queued', 'queued'],
      ['in_jobs', 'inJobs'],
      ['on_demand', 'onDemand'],
      ['in_group', 'inGroup'],
    ])
      e.sample({ model: l.modelId, state }, l[key])
}

/**
 * The gauge of a group's member processes by role (`members`: `[{ leads }]`, as door.groupMembers()
 * or a store reader gives them); `whose`: "the store's group", ...
 */
function groupFamily(e, members, whose) {
  e.family(
    'bedrock_batch_group_members',
    'gauge',
    `Processes of ${whose}, by role: leader (forms the group's batches and runs its jobs), member.`,
  )
  const leaders = members.filter((m) => m.leads).length
  e.sample({ role: 'leader' }, leaders).sample({ role: 'member' }, members.length - leaders)
}

/**
 * The exposition of a store read from beside its processes (the `dashboard` command's snapshot,
 * lib/dashboard/store-source.js): its jobs and their records, the committed spend when the store
 * keeps it, a group's member processes. Nothing about requests: those live in the processes.
 */
function storeExposition(snap) {
  const e = new Exposition()
  jobFamilies(e, snap.stats.jobs, "the store's group (or journal)")
  recordErrorFamily(e, snap.stats.jobs, "the store's group (or journal)", (j) =>
    Object.entries(snap.recordErrors?.[j.jobArn] ?? {}).map(([name, count]) => ({ name, count })),
  )
  if (Number.isFinite(snap.spend?.committedUsd))
    e.family(
      'bedrock_batch_committed_spend_usd',
      'gauge',
      'Upper-bound cost in USD of everything sent so far, as the store keeps it (with maxCostUsd).',
    ).sample({}, snap.spend.committedUsd)
  if (snap.store?.kind === 'postgres' && Array.isArray(snap.members)) groupFamily(e, snap.members, "the store's group")
  return e.text()
}

/**
 * The exposition of `stats` (see Stats in index.d.ts) and the door's `requests` (RequestMetrics);
 * with `group` (`{ members }`: serve with a PostgreSQL store), the group's member processes. A
 * group whose members could not be read (`{ membersError }`) has no such gauge: not a wrong zero.
 * With `load` (door.requestsByModel(): serve reads it per scrape), the requests held by model and
 * state.
 */
function exposition(stats, requests, group, load) {
  const e = new Exposition()
  e.family(
    'bedrock_batch_requests',
    'gauge',
    'Requests waiting in this client now, by state: queued (not in a job yet), in_flight (in a job or sent on-demand, not answered yet).',
  )
    .sample({ state: 'queued' }, stats.queued)
    .sample({ state: 'in_flight' }, stats.inFlight)

  const series = [...requests.series()]
  e.family(
    'bedrock_batch_requests_total',
    'counter',
    "Requests settled, by model, operation and outcome (success, error: rejected with an exception, aborted: by the caller's abort signal).",
  )
  for (const s of series) e.sample({ model: s.model, operation: s.operation, outcome: s.outcome }, s.count)
  e.family(
    'bedrock_batch_request_errors_total',
    'counter',
    "Requests rejected with an exception, by model, operation and the exception's name (ValidationException, ThrottlingException, ...).",
  )
  for (const r of requests.errors()) e.sample({ model: r.model, operation: r.operation, error: r.error }, r.count)
  e.family(
    'bedrock_batch_request_duration_seconds',
    'histogram',
    'Seconds from send to settle of each request (the answer or the exception reaching the caller), by model, operation and outcome.',
  )
  for (const s of series) {
    const labels = { model: s.model, operation: s.operation, outcome: s.outcome }
    let cumulative = 0
    for (let b = 0; b < BUCKETS.length; b++) {
      cumulative += s.counts[b]
      e.sample({ ...labels, le: String(BUCKETS[b]) }, cumulative, '_bucket')
    }
    e.sample({ ...labels, le: '+Inf' }, s.count, '_bucket')
    e.sample(labels, s.sum, '_sum')
    e.sample(labels, s.count, '_count')
  }

  jobFamilies(e, stats.jobs, 'this client')
  recordErrorFamily(e, stats.jobs, 'this client', (j) => j.recordErrors ?? [])
  if (Array.isArray(load)) loadFamily(e, load)

  e.family(
    'bedrock_batch_padded_records_total',
    'counter',
    "Filler records added to reach a job's minimum size.",
  ).sample({}, stats.padded)
  e.family(
    'bedrock_batch_resubmitted_requests_total',
    'counter',
    'Requests sent again after a missing output line or a retryable error.',
  ).sample({}, stats.resubmitted)
  if (stats.failedCalls) {
    e.family(
      'bedrock_batch_failed_calls_total',
      'counter',
      "Calls that failed after the AWS SDK's own retries, by service: s3 (input and output files), bedrock (the batch control plane: jobs, Service Quotas), store (the journal or the PostgreSQL store: opening, reading, writing).",
    )
    for (const service of ['s3', 'bedrock', 'store']) e.sample({ service }, stats.failedCalls[service])
  }
  const deadline = stats.deadlineFallbacks
  e.family(
    'bedrock_batch_on_demand_requests_total',
    'counter',
    'Requests sent on-demand instead of in a job, by reason: deadline (the request\'s deadline came, or was too close for a job), other (guardrails, trace, belowMinimum "direct", streams, Flex preferred). Their sum is stats().sentDirect.',
  )
    .sample({ reason: 'deadline' }, deadline)
    .sample({ reason: 'other' }, Math.max(0, stats.sentDirect - deadline))

  e.family('bedrock_batch_tokens_total', 'counter', 'Tokens of the answered requests, by type: input, output.')
    .sample({ type: 'input' }, stats.tokens.input)
    .sample({ type: 'output' }, stats.tokens.output)
  e.family('bedrock_batch_tier_requests_total', 'counter', 'Requests answered by price tier: batch, flex, standard.')
  for (const [tier, t] of Object.entries(stats.tiers)) e.sample({ tier }, t.requests)
  e.family(
    'bedrock_batch_estimated_cost_usd_total',
    'counter',
    "Estimated cost in USD of the answered requests, by price tier, at the model's price (the pricing option, else the shipped table).",
  )
  for (const [tier, t] of Object.entries(stats.tiers)) e.sample({ tier }, t.estimatedUsd)
  if (stats.estimatedSavingUsd !== undefined)
    e.family(
      'bedrock_batch_estimated_saving_usd_total',
      'counter',
      "Estimated USD saved against on-demand: half the on-demand cost of the jobs' tokens (with the pricing option).",
    ).sample({}, stats.estimatedSavingUsd)
  if (stats.spend) {
    e.family(
      'bedrock_batch_committed_spend_usd',
      'gauge',
      'Upper-bound cost in USD of everything sent so far (with maxCostUsd).',
    ).sample({}, stats.spend.committedUsd)
    e.family('bedrock_batch_max_cost_usd', 'gauge', 'The spend cap in USD (maxCostUsd).').sample(
      {},
      stats.spend.maxCostUsd,
    )
  }
  if (stats.leader !== undefined)
    e.family(
      'bedrock_batch_leader',
      'gauge',
      "1 while this client leads its store's group (forms the group's batches and runs its jobs), else 0.",
    ).sample({}, stats.leader ? 1 : 0)
  if (stats.store)
    e.family(
      'bedrock_batch_store_size_bytes',
      'gauge',
      "Size of the store in bytes, by kind: sqlite (the journal file), postgres (about the group's size).",
    ).sample({ kind: stats.store.kind }, stats.store.bytes)
  if (Array.isArray(group?.members)) groupFamily(e, group.members, "this client's group")
  return e.text()
}

module.exports = {
  RequestMetrics,
  exposition,
  storeExposition,
  escapeLabel,
  BUCKETS,
  CONTENT_TYPE,
  SUCCESS,
  ERROR,
  ABORTED,
}
