'use strict'
// The dashboard's data read from a store beside the processes that own it: the addon's
// NativeStoreReader (a PostgreSQL group, or a journal, read without its lock), polled every few
// seconds. Each poll makes a snapshot of the shape the page renders (`stats.jobs` as `stats()` gives
// them, `jobTimes`) plus what only a store tells: the group's members, its committed spend, the
// failed records of ended jobs by error name, and the last of them with their messages (as the
// store keeps them: AWS's or the bridge's words, which name members, not values). Names, statuses,
// counts, hosts, pids and those messages only: never a body or an answer.

const { record } = require('./view.js')
const { renderJobPage } = require('./store-view.js')
const { TERMINAL } = require('../job-status.js')
const { RecentFailures } = require('../failures.js')

/** How long after a job is seen ended its stored answers are still read (they are written as its output is read). */
const ANSWERS_SETTLE_MS = 30_000
const PAGE = 1000
/** Pages of answers read at most per poll, so that a store of many ended jobs is read over several polls. */
const PAGES_PER_POLL = 20

/** A store error (the addon's error data) as one line: `StoreUnavailableException: ...`. */
function errorText(error) {
  const { toException } = require('../errors.js')
  const e = toException(error)
  return `${e.name}: ${e.message}`
}

class StoreSource {
  /**
   * `reader`: a NativeStoreReader; `kind`: 'postgres' or 'sqlite'; `intervalMs`: between polls;
   * `commands(job)`: the command lines a job's page shows.
   */
  constructor(reader, { kind, intervalMs = 5000, commands = () => [], now = Date.now } = {}) {
    this._reader = reader
    this._commands = commands
    this._kind = kind
    this._intervalMs = intervalMs
    this._now = now
    this.startedAt = now()
    // By job ARN: { inProgressAt, endedAt, endedSeenAt, after, codes }.
    this._jobs = new Map()
    this._history = { base: 0, buckets: [] }
    // The last failed records read (records of ended jobs, in the order read), with their messages.
    this._failures = new RecentFailures()
    this._snap = null
    this._timer = null
    this._closed = false
  }

  /** Reads the store once, then every interval. */
  async start() {
    await this.poll()
    const next = () => {
      if (this._closed) return
      this._timer = setTimeout(async () => {
        await this.poll()
        next()
      }, this._intervalMs)
    }
    next()
    return this
  }

  /** One read of the store: a new snapshot (or the last one, with `readError`, when it failed). */
  async poll() {
    const reader = this._reader
    const now = this._now()
    let read
    try {
      read = await reader.jobs()
    } catch (err) {
      read = { error: { name: err?.name ?? 'Error', message: err?.message ?? String(err) } }
    }
    if (read.error) {
      const readError = read.error.name ? errorText(read.error) : String(read.error)
      this._snap = { ...(this._snap ?? this._empty()), now, readError }
      return this._snap
    }
    const jobs = read.jobs.map((j) => ({
      jobArn: j.jobArn,
      jobName: j.jobName,
      modelId: j.modelId,
      status: j.status,
      createdAt: j.createdAt,
      totalRecordCount: j.totalRecordCount,
      processedRecordCount: j.processedRecordCount ?? j.successRecordCount + j.errorRecordCount,
      successRecordCount: j.successRecordCount,
      errorRecordCount: j.errorRecordCount,
    }))
    const first = this._snap === null
    const jobTimes = {}
    for (const j of jobs) {
      let t = this._jobs.get(j.jobArn)
      if (!t) {
        // A job already InProgress at the first read: its rate is measured from its creation.
        t = { after: null, codes: {} }
        if (j.status === 'InProgress') t.inProgressAt = first ? j.createdAt : now
        this._jobs.set(j.jobArn, t)
      } else if (j.status === 'InProgress' && t.inProgressAt === undefined) t.inProgressAt = now
      if (TERMINAL.has(j.status)) {
        // Its end is known when this reader saw it running before.
        if (t.endedSeenAt === undefined) {
          t.endedSeenAt = now
          if (t.seenRunning) t.endedAt = now
        }
      } else t.seenRunning = true
      jobTimes[j.jobArn] = { firstSeen: j.createdAt }
      if (t.inProgressAt !== undefined) jobTimes[j.jobArn].inProgressAt = t.inProgressAt
      if (t.endedAt !== undefined) jobTimes[j.jobArn].endedAt = t.endedAt
    }
    await this._readAnswers(jobs, now)
    const [members, spend] = await Promise.all([this._members(), this._spend()])
    const recordErrors = {}
    for (const j of jobs) {
      const codes = this._jobs.get(j.jobArn).codes
      if (Object.keys(codes).length) recordErrors[j.jobArn] = { ...codes }
    }
    this._snap = {
      source: 'store',
      now,
      startedAt: this.startedAt,
      store: { kind: this._kind, location: reader.location },
      stats: { jobs },
      jobTimes,
      recordErrors,
      failures: this._failures.list(),
      ...members,
      spend,
    }
    record(this._history, this._snap)
    return this._snap
  }

  /**
   * Counts the error names of the answers stored for ended jobs with records in error (and keeps
   * the last of them with their messages), reading on from where the last poll stopped, at most
   * PAGES_PER_POLL pages a poll (the rest at the next).
   */
  async _readAnswers(jobs, now) {
    let pages = 0
    for (const j of jobs) {
      const t = this._jobs.get(j.jobArn)
      if (!TERMINAL.has(j.status) || j.errorRecordCount === 0 || t.answersError) continue
      if (!t.more && now - t.endedSeenAt > ANSWERS_SETTLE_MS) continue
      for (;;) {
        if (pages++ >= PAGES_PER_POLL) return
        const page = await this._reader.results(j.jobArn, t.after, PAGE)
        if (page.error) {
          t.answersError = true
          break
        }
        for (const r of page.results) {
          if (r.errorName) {
            t.codes[r.errorName] = (t.codes[r.errorName] ?? 0) + 1
            const where = { model: j.modelId, jobArn: j.jobArn, recordId: r.recordId }
            this._failures.add(where, { name: r.errorName, message: r.errorMessage })
          }
          t.after = r.record
        }
        t.more = page.results.length === PAGE
        if (!t.more) break
      }
    }
  }

  /** `{ members }` of a group (empty for a journal), or `{ membersError }`. */
  async _members() {
    try {
      const { members, error } = await this._reader.members()
      return error ? { membersError: errorText(error) } : { members: members ?? [] }
    } catch (err) {
      return { membersError: String(err?.message ?? err) }
    }
  }

  /** `{ committedUsd }` as the store keeps it (null when it does not), or `{ committedUsd: null, error }`. */
  async _spend() {
    try {
      const { usd, error } = await this._reader.committedSpend()
      if (error) return { committedUsd: null, error: errorText(error) }
      return { committedUsd: Number.isFinite(usd) ? usd : null }
    } catch (err) {
      return { committedUsd: null, error: String(err?.message ?? err) }
    }
  }

  _empty() {
    return {
      source: 'store',
      now: this._now(),
      startedAt: this.startedAt,
      store: { kind: this._kind, location: this._reader.location },
      stats: { jobs: [] },
      jobTimes: {},
      recordErrors: {},
      failures: [],
      members: [],
      spend: { committedUsd: null },
    }
  }

  /** The last snapshot (the page, dashboard.json and metrics are made from it). */
  snapshot() {
    return this._snap ?? this._empty()
  }

  history() {
    return { base: this._history.base, buckets: this._history.buckets.map((b) => ({ ...b })) }
  }

  /** The job of the last snapshot whose ARN ends with `/id` (or is `id`), or undefined. */
  job(id) {
    return this.snapshot().stats.jobs.find((j) => j.jobArn === id || j.jobArn.endsWith(`/${id}`))
  }

  /** The page of the job `id` (HTML), or undefined. */
  jobPage(id) {
    const job = this.job(id)
    return job && renderJobPage(this.snapshot(), job, { commands: this._commands(job) })
  }

  close() {
    this._closed = true
    clearTimeout(this._timer)
  }
}

module.exports = { StoreSource }
