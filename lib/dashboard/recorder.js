'use strict'
// What the dashboard knows beyond `stats()`, kept by `serve` from its start: when this process
// first saw each job, when it saw it InProgress and when it ended (from the door's `job` events),
// and a per-minute history of the requests settled and the jobs running (the page's timeline is
// seeded from it, then kept by the page from its polls). With a PostgreSQL store, the group's
// member processes (door.groupMembers(), also for serve's metrics). Each poll also reads where each
// model's requests are (door.requestsByModel()) and the jobs' failed records by error name (the
// engine counts them as it reads their output). Job names, statuses, counts, error names, hosts and pids, and the last failures' exception names
// and messages (door.recentFailures(): never a body).

const { hostname } = require('node:os')
const { esc } = require('./view.js')
const { renderJobPage } = require('./store-view.js')
const { TERMINAL } = require('../job-status.js')

/** Minutes of history kept (and sent to a page): 12 hours. */
const HISTORY_MINUTES = 720
/** How often the history is sampled while nothing else happens. */
const SAMPLE_MS = 15_000
const MINUTE_MS = 60_000
/** The group's members are read at most this often (each page polls every 2 s). */
const MEMBERS_MS = 1000
/** With a store, its jobs (for their creation times) are read at most this often, when a job without one is seen. */
const CREATED_MS = 5000

/** The requests settled so far (answered, rejected or aborted), from a door's `requestSummary()`. */
function settledOf(summary) {
  let n = 0
  for (const m of summary.models) n += m.success + m.error + m.aborted
  return n
}

/**
 * The failed records of each job by error name, as the engine counted them reading its output
 * (`stats().jobs[].recordErrors`): `{ [jobArn]: { [name]: count } }`, jobs without any left out.
 */
function recordErrors(jobs) {
  const out = {}
  for (const j of jobs)
    if (j.recordErrors?.length) out[j.jobArn] = Object.fromEntries(j.recordErrors.map((e) => [e.name, e.count]))
  return out
}

class Recorder {
  /** `door`: the door of `serve`; `now`: the clock (epoch milliseconds). */
  constructor(door, now = Date.now) {
    this._door = door
    this._now = now
    this.startedAt = now()
    // By job ARN: { firstSeen, inProgressAt, endedAt, status }.
    this._jobs = new Map()
    // Per minute: { t: the minute's start, settled: the cumulative count at its last sample, running }.
    this._history = []
    // The cumulative count before the first bucket kept.
    this._base = 0
    // The last read of the group's members: { at, promise }.
    this._members = null
    this._host = hostname()
    // With a store: when each job was created (epoch ms), by ARN, from the store's jobs (door.jobs()).
    this._created = new Map()
    this._createdRead = { at: -Infinity, reading: false }
    door.on('job', (job) => this._onJob(job))
    this._timer = setInterval(() => this.sample(), SAMPLE_MS)
    this._timer.unref()
  }

  _onJob(job) {
    if (!job || typeof job.jobArn !== 'string') return
    const now = this._now()
    const times = this._jobs.get(job.jobArn) ?? { firstSeen: now }
    times.status = job.status
    if (job.status === 'InProgress' && times.inProgressAt === undefined) times.inProgressAt = now
    if (TERMINAL.has(job.status) && times.endedAt === undefined) times.endedAt = now
    this._jobs.set(job.jobArn, times)
    this.sample()
  }

  /** The jobs running now, as the `job` events said (ended ones are not). */
  _running() {
    let n = 0
    for (const j of this._jobs.values()) if (!TERMINAL.has(j.status)) n++
    return n
  }

  /** Records the settled count and the running jobs in the current minute's bucket. */
  sample(summary = this._door.requestSummary()) {
    const now = this._now()
    const t = now - (now % MINUTE_MS)
    const settled = settledOf(summary)
    const running = this._running()
    const last = this._history[this._history.length - 1]
    if (last && last.t === t) {
      last.settled = settled
      last.running = Math.max(last.running, running)
    } else {
      this._history.push({ t, settled, running })
      if (this._history.length > HISTORY_MINUTES) this._base = this._history.shift().settled
    }
  }

  /** Each job's times (epoch milliseconds), by ARN. */
  jobTimes() {
    const out = {}
    for (const [arn, j] of this._jobs) {
      out[arn] = { firstSeen: j.firstSeen }
      if (this._created.has(arn)) out[arn].createdAt = this._created.get(arn)
      if (j.inProgressAt !== undefined) out[arn].inProgressAt = j.inProgressAt
      if (j.endedAt !== undefined) out[arn].endedAt = j.endedAt
    }
    return out
  }

  /**
   * What a page polls: the time, `stats()`, the settled requests per model, the errors by name,
   * the last failures (name and message, newest first), the jobs' times, the group's members
   * (empty without a PostgreSQL store), where each model's requests are (`load`, or `loadError`)
   * and the jobs' failed records by error name.
   */
  async snapshot() {
    const summary = this._door.requestSummary()
    this.sample(summary)
    const stats = this._door.stats()
    const group = stats.store?.kind === 'postgres' ? await this.groupMembers() : { members: [] }
    if (stats.store) this._readCreated(stats.jobs)
    const load = await this._door.requestsByModel().then(
      (models) => ({ load: models }),
      (err) => ({ loadError: `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}` }),
    )
    return {
      now: this._now(),
      startedAt: this.startedAt,
      stats,
      requests: summary.models,
      errors: summary.errors,
      failures: this._door.recentFailures(),
      jobTimes: this.jobTimes(),
      ...group,
      ...load,
      recordErrors: recordErrors(stats.jobs),
    }
  }

  /**
   * `{ members }` of the group, this process's marked `self`, or `{ members: [], membersError }`;
   * read at most once a second, however many pages poll and scrapers scrape.
   */
  groupMembers() {
    const now = this._now()
    if (!this._members || now - this._members.at >= MEMBERS_MS) {
      const promise = this._door.groupMembers().then(
        (members) => ({
          members: members.map((m) => ({
            host: m.host,
            pid: m.pid,
            since: m.since,
            leads: m.leads,
            ...(m.pid === process.pid && m.host === this._host ? { self: true } : {}),
          })),
        }),
        (err) => ({ members: [], membersError: `${err?.name ?? 'Error'}: ${err?.message ?? String(err)}` }),
      )
      this._members = { at: now, promise }
    }
    return this._members.promise
  }

  /**
   * With a store: reads, in the background, when the jobs were created (the store keeps it) when a
   * job of `jobs` has no such time yet, at most every CREATED_MS.
   */
  _readCreated(jobs) {
    const r = this._createdRead
    const now = this._now()
    if (r.reading || now - r.at < CREATED_MS || jobs.every((j) => this._created.has(j.jobArn))) return
    r.reading = true
    r.at = now
    this._door.jobs().then(
      (stored) => {
        for (const j of stored) {
          const t = j.createdAt instanceof Date ? j.createdAt.getTime() : undefined
          if (Number.isFinite(t)) this._created.set(j.jobArn, t)
        }
        r.reading = false
      },
      () => {
        r.reading = false
      },
    )
  }

  /** The page of the job `id` (the last part of its ARN): HTML, or undefined for no such job of this process. */
  async jobPage(id) {
    const snap = await this.snapshot()
    const job = snap.stats.jobs.find((j) => j.jobArn === id || j.jobArn.endsWith(`/${id}`))
    if (!job) return undefined
    const region = job.jobArn.split(':')[3]
    const commands = [
      `bedrock-batch-bridge jobs show ${job.jobArn}${region ? ` --region ${region}` : ''}`,
      `bedrock-batch-bridge jobs results ${job.jobArn}${region ? ` --region ${region}` : ''} --out results.jsonl`,
    ]
    const where = `serve${snap.stats.store ? ` · <code>${esc(snap.stats.store.location)}</code>` : ''}`
    const created = snap.jobTimes[job.jobArn]?.createdAt
    const times = created === undefined ? snap.jobTimes : { ...snap.jobTimes, [job.jobArn]: { firstSeen: created } }
    return renderJobPage({ ...snap, jobTimes: times }, job, {
      commands,
      where,
      created: created === undefined ? 'Seen by this process' : 'Created',
    })
  }

  /** The per-minute history: `{ base, buckets }`, buckets oldest first, `base` the settled count before them. */
  history() {
    return { base: this._base, buckets: this._history.map((b) => ({ ...b })) }
  }

  close() {
    clearInterval(this._timer)
  }
}

module.exports = { Recorder, settledOf }
