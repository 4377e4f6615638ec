'use strict'
// `bedrock-batch-bridge jobs watch`: a live view of the jobs in the terminal, one line per job
// (progress bar, counts, status, elapsed, ETA), read from Bedrock (as `jobs list`) or from a store
// (--store / --journal) every --interval seconds. On a terminal the lines are redrawn in place
// (ANSI cursor movement) and `q` or Ctrl-C quits; piped, a job's line is printed again only when its
// status or counts change. It ends once every job shown has ended, unless --follow.

const { eta, fmtDuration, fmtClock } = require('../lib/dashboard/view.js')
const { TERMINAL } = require('../lib/job-status.js')

/** Job names are shown in full up to this width. */
const MAX_NAME_WIDTH = 40
const BAR_WIDTH = 16

const ESC = '\x1b['
const HIDE_CURSOR = `${ESC}?25l`
const SHOW_CURSOR = `${ESC}?25h`

/** A bar of `done` out of `total`: `[#########...........]  45%`. */
function bar(done, total, width = BAR_WIDTH) {
  const f = total > 0 ? Math.min(1, done / total) : 0
  const full = Math.floor(f * width)
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`
}

function padded(text, width) {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width)
}

/** The width of the names column: the longest name, at most MAX_NAME_WIDTH. */
function nameWidth(jobs) {
  return Math.min(MAX_NAME_WIDTH, Math.max(10, ...jobs.map((j) => j.jobName.length)))
}

/**
 * Follows jobs: `read()` resolves with the jobs now, as `{ jobArn, jobName, status,
 * totalRecordCount, processedRecordCount, successRecordCount, errorRecordCount, startedAt (epoch
 * ms), endedAt? }`; the first time it sees each job InProgress is the base of its ETA.
 */
class Watch {
  constructor({ source, now = Date.now }) {
    this._source = source
    this._now = now
    this._seen = new Map()
    this._printed = new Map()
    this._drawn = 0
  }

  /** The line of one job; `nameWidth`: the column of names. */
  line(j, now, nameWidth = MAX_NAME_WIDTH) {
    let seen = this._seen.get(j.jobArn)
    const running = j.status === 'InProgress'
    if (!seen || (running && !seen.running)) {
      seen = { t: now, processed: j.processedRecordCount, running }
      this._seen.set(j.jobArn, seen)
    }
    const e = eta(j, undefined, seen.running ? seen : undefined, now).text
    const elapsed = Number.isFinite(j.startedAt)
      ? fmtDuration((j.endedAt ?? (TERMINAL.has(j.status) ? undefined : now)) - j.startedAt)
      : '—'
    const counts = `${j.processedRecordCount}/${j.totalRecordCount}`
    return `${padded(j.jobName, nameWidth)} ${j.status.padEnd(11)} ${bar(j.processedRecordCount, j.totalRecordCount)} ${counts.padStart(9)}  ok ${j.successRecordCount}  err ${j.errorRecordCount}  ${elapsed === '—' ? '' : `${elapsed}  `}ETA ${e}`
  }

  /** The header line: what is watched, how many jobs run, when it was read. */
  header(jobs, now, error) {
    const running = jobs.filter((j) => !TERMINAL.has(j.status)).length
    const read = error ? `read failed at ${fmtClock(now)}: ${error}` : `updated ${fmtClock(now)}`
    return `${this._source}: ${jobs.length} jobs, ${running} running · ${read}`
  }

  /** The screen on a terminal: the header and one line per job, fitted to `columns` x `rows`. */
  screen(jobs, now, { columns = 120, rows = 40, error } = {}) {
    const room = Math.max(1, rows - 3)
    const shown = jobs.slice(0, room)
    const width = nameWidth(shown)
    const lines = [this.header(jobs, now, error), ...shown.map((j) => this.line(j, now, width))]
    if (jobs.length > shown.length) lines.push(`… and ${jobs.length - shown.length} more (make the terminal taller)`)
    if (jobs.length === 0) lines.push('no jobs yet')
    // A line as wide as the terminal would wrap and break the redraw: one column less.
    return lines.map((l) => (l.length >= columns ? `${l.slice(0, columns - 2)}…` : l))
  }

  /**
   * Redraws the screen in place: back to the first line drawn last time (CR, cursor up), each line
   * written over the old one (erasing the rest of it), and what is left below erased. Nothing
   * clears the whole screen, which a terminal may keep in its history.
   */
  redraw(out, lines) {
    const up = this._drawn > 0 ? `\r${ESC}${this._drawn}A` : ''
    out.write(`${up}${lines.map((l) => `${l}${ESC}K\n`).join('')}${ESC}J`)
    this._drawn = lines.length
  }

  /** The lines of the jobs whose status or counts changed since they were last printed (piped output). */
  changed(jobs, now) {
    const out = []
    for (const j of jobs) {
      const key = `${j.status} ${j.processedRecordCount}/${j.totalRecordCount} ${j.successRecordCount} ${j.errorRecordCount}`
      if (this._printed.get(j.jobArn) === key) continue
      this._printed.set(j.jobArn, key)
      out.push(`${fmtClock(now)}  ${this.line(j, now, nameWidth(jobs))}`)
    }
    return out
  }
}

/**
 * Quits on `q` (or Ctrl-C, which raw mode turns into a byte) typed on the terminal `input`: its
 * raw mode is turned on and `onQuit` called at the first such key; returns the function that
 * restores the terminal. Not a terminal: nothing to do.
 */
function quitKeys(input, onQuit) {
  if (!input?.isTTY || typeof input.setRawMode !== 'function') return () => {}
  const wasRaw = Boolean(input.isRaw)
  input.setRawMode(true)
  const onData = (chunk) => {
    const keys = String(chunk)
    if (keys.includes('q') || keys.includes('Q') || keys.includes('\x03')) onQuit()
  }
  input.on('data', onData)
  input.resume()
  return () => {
    input.off('data', onData)
    input.setRawMode(wasRaw)
    input.pause()
  }
}

/**
 * Runs the watch until every job shown has ended (while no job is shown it keeps waiting), or,
 * with `follow`, until stopped; on a terminal `q` or Ctrl-C stops it, and so do SIGINT and
 * SIGTERM (`signal`). `read()` resolves with the jobs; `intervalMs` between reads.
 */
async function watch({ read, source, intervalMs, follow, out = process.stdout, input = process.stdin, signal }) {
  const w = new Watch({ source })
  const tty = Boolean(out.isTTY)
  const quit = new AbortController()
  signal?.addEventListener('abort', () => quit.abort(), { once: true })
  const sleep = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      quit.signal.addEventListener('abort', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  const restore = tty ? quitKeys(input, () => quit.abort()) : () => {}
  if (tty) out.write(HIDE_CURSOR)
  try {
    let jobs = await read()
    let error
    for (;;) {
      const now = Date.now()
      if (tty) w.redraw(out, w.screen(jobs, now, { columns: out.columns, rows: out.rows, error }))
      else {
        if (error) process.stderr.write(`${fmtClock(now)}  read failed: ${error}\n`)
        for (const l of w.changed(jobs, now)) out.write(`${l}\n`)
      }
      if (!follow && jobs.length > 0 && jobs.every((j) => TERMINAL.has(j.status))) return
      if (quit.signal.aborted) return
      await sleep(intervalMs)
      if (quit.signal.aborted) return
      try {
        jobs = await read()
        error = undefined
      } catch (err) {
        error = err?.message ?? String(err)
      }
    }
  } finally {
    restore()
    if (tty) out.write(SHOW_CURSOR)
  }
}

module.exports = { watch, Watch, bar }
