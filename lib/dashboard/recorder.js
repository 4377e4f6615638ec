'use strict'
// What the dashboard knows beyond `stats()`, kept by `serve` from its start: when this process
// first saw each job, when it saw it InProgress and when it ended (from the door's `job` events),
// and a per-minute history of the requests settled and the jobs running (the page's timeline is
// seeded from it, then kept by the page from its polls). Job names, statuses and counts only.

/** Statuses after which a job does not change any more. */
const TERMINAL = new Set(['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired'])
/** Minutes of history kept (and sent to a page): 12 hours. */
const HISTORY_MINUTES = 720
/** How often the history is sampled while nothing else happens. */
const SAMPLE_MS = 15_000
const MINUTE_MS = 60_000

/** The requests settled so far (answered, rejected or aborted), from a door's `requestSummary()`. */
function settledOf(summary) {
  let n = 0
  for (const m of summary.models) n += m.success + m.error + m.aborted
  return n
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
      if (j.inProgressAt !== undefined) out[arn].inProgressAt = j.inProgressAt
      if (j.endedAt !== undefined) out[arn].endedAt = j.endedAt
    }
    return out
  }

  /** What a page polls: the time, `stats()`, the settled requests per model, the errors by name, the jobs' times. */
  snapshot() {
    const summary = this._door.requestSummary()
    this.sample(summary)
    return {
      now: this._now(),
      startedAt: this.startedAt,
      stats: this._door.stats(),
      requests: summary.models,
      errors: summary.errors,
      jobTimes: this.jobTimes(),
    }
  }

  /** The per-minute history: `{ base, buckets }`, buckets oldest first, `base` the settled count before them. */
  history() {
    return { base: this._base, buckets: this._history.map((b) => ({ ...b })) }
  }

  close() {
    clearInterval(this._timer)
  }
}

module.exports = { Recorder, TERMINAL, settledOf }
