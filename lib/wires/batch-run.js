'use strict'
// One batch of the Batch APIs (OpenAI Batches, Anthropic Message Batches) as it runs through the
// door: every line submitted at once (each with its own idempotency key and abort signal), so
// the engine forms its jobs of them as of any other traffic; the jobs that hold its lines, from
// the door's job list; and cancelling: the jobs that hold only its lines are stopped (their
// answered records are kept; the engine says which, `door.holding()`), a job shared with other
// callers is left to run for them, then the lines still unanswered are given up. The batch's own state (its object,
// kept in the store of objects) is the wires' (openai-batches.js, anthropic-batches.js); a batch
// taken up again after a restart is a new BatchRun with the same keys, told the jobs known before.

const native = require('../../binding.js')
const { engineOptions } = require('../options.js')
const { WIRE } = require('../settle.js')
const { TERMINAL } = require('../job-status.js')

const RUNNING = new Set(['InProgress', 'Stopping'])

/** How often a cancel looks at the jobs it stops. */
const CANCEL_POLL_MS = 100
/** A cancel's wait between looks at the jobs it stops. */
const pause = () => new Promise((resolve) => setTimeout(resolve, CANCEL_POLL_MS))
/** How long a cancel waits at most for the records of ended jobs (and jobs in the making) once none of its jobs runs. */
const DRAIN_MS = 30_000

/** The job ARN of an answer's request id (`<jobArn>#<recordId>`), if it came from a job. */
function jobOf(requestId) {
  if (typeof requestId !== 'string') return undefined
  const i = requestId.lastIndexOf('#')
  return i > 0 && requestId.startsWith('arn:') ? requestId.slice(0, i) : undefined
}

/** Each door's NativeAdmin (Bedrock's control plane, for stopping a job). */
const admins = new WeakMap()

/**
 * The door's NativeAdmin, built once from the options its engine runs with (a credentials
 * function is not passed on: the admin then takes the default credential chain).
 */
function adminOf(door) {
  let admin = admins.get(door)
  if (!admin) {
    admin = new native.NativeAdmin(engineOptions(door.options ?? {}).options)
    admins.set(door, admin)
  }
  return admin
}

class BatchRun {
  /**
   * `door`; `lines`: `[{ id, modelId, submit(options, signal) → Promise }]`, where `submit` sends
   * the line's request(s) through the door with these options (its idempotency key) and signal;
   * `keyPrefix`: the idempotency keys are `<keyPrefix>:<id>`; `jobs`: the ARNs of jobs known to
   * hold its lines (taken up after a restart); `onSettle()`: called as each line settles.
   */
  constructor(door, lines, keyPrefix, { jobs = [], onSettle } = {}) {
    this._door = door
    this._lines = lines
    this._keyPrefix = `${keyPrefix}:`
    this._models = new Set(lines.map((l) => l.modelId))
    /** id → `{ ok: true, value, jobArn } | { ok: false, error, jobArn }`, as lines settle. */
    this.results = new Map()
    this.cancelRequested = false
    this._aborts = new Map()
    this._jobs = new Set(jobs)
    this._unstoppable = new Set()
    this._known = new Set(door.started ? door.stats().jobs.map((j) => j.jobArn) : [])
    for (const line of lines) {
      const abort = new AbortController()
      this._aborts.set(line.id, abort)
      let p
      try {
        p = line.submit({ idempotencyKey: `${keyPrefix}:${line.id}` }, abort.signal)
      } catch (err) {
        p = Promise.reject(err)
      }
      line.promise = p.then(
        (value) => {
          const jobArn = jobOf(value?.requestId)
          if (jobArn) this._jobs.add(jobArn)
          this.results.set(line.id, { ok: true, value, jobArn })
          onSettle?.()
        },
        (error) => {
          const jobArn = error?.jobArn ?? jobOf(error?.$metadata?.requestId)
          if (jobArn) this._jobs.add(jobArn)
          this.results.set(line.id, { ok: false, error, jobArn })
          onSettle?.()
        },
      )
    }
    // Every line is queued: send them now rather than after the batch timeout.
    door.flush()
    this.done = Promise.all(lines.map((l) => l.promise))
  }

  /** Whether every line has settled. */
  get settled() {
    return this.results.size === this._lines.length
  }

  /**
   * The jobs of this batch as the door knows them: those its answers came from, and those of its
   * models that the door created after it started (while lines were still waiting).
   */
  jobs() {
    if (!this._door.started) return []
    const all = this._door.stats().jobs
    if (!this.settled && !this._closed)
      for (const j of all) if (!this._known.has(j.jobArn) && this._models.has(j.modelId)) this._jobs.add(j.jobArn)
    return all.filter((j) => this._jobs.has(j.jobArn))
  }

  /** The ARNs of the jobs known to hold its lines (to be told to a BatchRun taking it up after a restart). */
  jobArns() {
    this.jobs()
    return [...this._jobs]
  }

  /** The status of one of the door's jobs, if it knows it. */
  jobStatus(jobArn) {
    if (!jobArn || !this._door.started) return undefined
    // Read once per turn of the event loop (a batch's lines are written out in one).
    if (!this._statuses) {
      this._statuses = new Map(this._door.stats().jobs.map((j) => [j.jobArn, j.status]))
      setImmediate(() => {
        this._statuses = undefined
      })
    }
    return this._statuses.get(jobArn)
  }

  /** `validating` while its jobs are being created and validated, `in_progress` once one runs or a line is answered. */
  phase() {
    if (this.settled) return 'done'
    if (this.results.size > 0) return 'in_progress'
    return this.jobs().some((j) => RUNNING.has(j.status) || TERMINAL.has(j.status)) ? 'in_progress' : 'validating'
  }

  /**
   * Cancels: stops the jobs that hold nothing but its lines (a stopped job's answered records are
   * kept, its others end as cancelled) and waits until their records are delivered; a job that
   * also holds other callers' requests is left to run for them. Then the lines still unanswered
   * are given up (taken out of their queue when not yet sent). Resolves once every line has
   * settled. A job that cannot be stopped (the stop refused) is left to run; its lines are given up.
   */
  async cancel() {
    if (this.cancelRequested) return this.done
    this.cancelRequested = true
    // The engine answers in turn with the sends before it: this batch's lines are all in.
    const signals = new Set([...this._aborts.values()].map((a) => a.signal))
    let held = await this._door.holding(signals, this._keyPrefix)
    if (held === null) await this._stopEveryJob()
    else {
      const stopped = new Set()
      for (;;) {
        const own = held.filter((h) => h.onlyThese)
        for (const h of own)
          if (h.jobArn && !stopped.has(h.jobArn)) {
            stopped.add(h.jobArn)
            await this._stop(h.jobArn)
          }
        // Until every job of its own has ended and been read (or cannot be stopped).
        if (this.settled || own.every((h) => h.jobArn && this._unstoppable.has(h.jobArn))) break
        await pause()
        held = await this._door.holding(signals, this._keyPrefix)
      }
    }
    // Let the last settlements reach their lines before the rest is taken out.
    await pause()
    this._closed = true
    for (const line of this._lines) if (!this.results.has(line.id)) this._aborts.get(line.id).abort()
    return this.done
  }

  /**
   * A client of a group (its batches are its leader's, so which jobs hold only this batch is not
   * known here): stops every job holding its lines, whole, and waits until their records are
   * delivered. Records of other callers in those jobs end too (see docs/wires.md).
   */
  async _stopEveryJob() {
    const stopped = new Set()
    // Jobs known from before a restart that the door does not list (yet): stopped too.
    const listed = new Set(this._door.started ? this._door.stats().jobs.map((j) => j.jobArn) : [])
    for (const jobArn of this._jobs)
      if (!listed.has(jobArn)) {
        stopped.add(jobArn)
        await this._stop(jobArn)
      }
    let drainUntil
    while (!this.settled) {
      const live = this.jobs().filter((j) => !TERMINAL.has(j.status))
      const waiting = []
      for (const j of live) {
        if (!stopped.has(j.jobArn) && j.status !== 'Stopping') {
          stopped.add(j.jobArn)
          if (!(await this._stop(j.jobArn))) continue
        }
        if (this._unstoppable.has(j.jobArn)) continue
        waiting.push(j)
      }
      if (waiting.length === 0) {
        // The engine reads an ended job's output after it reports its status, and a job may be in
        // the making: wait (a while at most) until every request sent is in a job still running.
        drainUntil ??= Date.now() + DRAIN_MS
        const s = this._door.stats()
        const running = s.jobs.filter((j) => !TERMINAL.has(j.status)).reduce((n, j) => n + j.totalRecordCount, 0)
        if (s.inFlight <= running || Date.now() > drainUntil) break
      }
      await pause()
    }
  }

  /** Stops a job; false (and the job left to run) when Bedrock refuses. */
  async _stop(jobArn) {
    let error
    try {
      error = await adminOf(this._door).stopJob(jobArn)
    } catch (err) {
      error = err
    }
    // A job that ended meanwhile cannot be stopped (a ValidationException): it ends as it is.
    if (error && error.name !== 'ValidationException' && error.name !== 'ConflictException') {
      this._unstoppable.add(jobArn)
      return false
    }
    return true
  }
}

/** Whether a line's failure means it never ran: cancelled (the batch was) or expired (its job was). */
function neverRan(run, result) {
  const e = result.error
  if (e?.name === 'AbortError') return 'cancelled'
  if (e?.name === 'BatchJobFailedException' && e.status === 'Stopped' && run.cancelRequested) return 'cancelled'
  const status = e?.status ?? run.jobStatus(result.jobArn)
  if ((e?.name === 'BatchJobFailedException' || e?.name === 'RecordMissingException') && status === 'Expired')
    return 'expired'
  return null
}

/** `submit` for a line of one request: `operation` on `modelId` with `body`, through the door's wire shape. */
function doorSubmit(door, operation, modelId, body) {
  return (options, signal) => door.submit(WIRE, operation, modelId, body, options, signal)
}

module.exports = { BatchRun, neverRan, doorSubmit, jobOf }
