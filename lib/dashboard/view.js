'use strict'
  // The dashboard's views, as HTML text: `serve` renders the first view with them (so the tables are
  // there with JavaScript off) and the page runs the same file (served at /_bridge/assets/view.js)
  // to redraw its sections from each poll. Every text that comes from data goes through `esc`; the
  // data are `stats()`, request counts by model and exception name, the last failures' exception
  // names and messages (as AWS or this package worded them: they name members, not values), and job
  // times: never a request body, an answer or a credential.
;((root, factory) => {
  const api = factory()
  if (typeof module === 'object' && module.exports) module.exports = api
  else root.BridgeDashboard = api
})(globalThis, () => {
  const TERMINAL = ['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired']
  const MINUTE_MS = 60_000
  /** Minutes the timeline shows. */
  const TIMELINE_MINUTES = 60

  const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

  /** Text as HTML text or attribute value. */
  function esc(value) {
    return String(value ?? '').replace(/[&<>"']/g, (c) => HTML_ESCAPES[c])
  }

  /** A number as an attribute value (0 when not a finite number). */
  function num(value) {
    return Number.isFinite(value) ? String(value) : '0'
  }

  /** A count with thousands separators. */
  function fmtInt(n) {
    return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '0'
  }

  /** US dollars: 2 decimals from a dollar up, else 4. */
  function fmtUsd(v) {
    if (!Number.isFinite(v)) return '$0.00'
    return `$${Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4)}`
  }

  /** A duration: `45s`, `3m 05s`, `2h 07m`, `1d 3h`. */
  function fmtDuration(ms) {
    if (!Number.isFinite(ms) || ms < 0) return '—'
    const s = Math.round(ms / 1000)
    if (s < 60) return `${s}s`
    const m = Math.floor(s / 60)
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`
    const h = Math.floor(m / 60)
    if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`
    return `${Math.floor(h / 24)}d ${h % 24}h`
  }

  /** A time of day in UTC: `14:03:59 UTC`. */
  function fmtClock(ms) {
    return Number.isFinite(ms) ? `${new Date(ms).toISOString().slice(11, 19)} UTC` : '—'
  }

  /** A status as a class name (letters only). */
  function statusClass(status) {
    return `status status-${String(status).replace(/[^A-Za-z]/g, '')}`
  }

  /** A job's id: the last part of its ARN. */
  function jobId(jobArn) {
    return String(jobArn).slice(String(jobArn).lastIndexOf('/') + 1)
  }

  function isRunning(job) {
    return !TERMINAL.includes(job.status)
  }

  /**
   * A job's ETA: `{ text, ms? }`. While InProgress, from the progress rate: the one the page
   * observed since it first saw the job (`seen`: `{ t, processed }`), else the one since the job
   * went InProgress (`times.inProgressAt`).
   */
  function eta(job, times, seen, now) {
    if (TERMINAL.includes(job.status)) return { text: 'ended' }
    if (job.status === 'Scheduled') return { text: 'waiting for capacity' }
    if (job.status === 'Submitted' || job.status === 'Validating') return { text: 'starting' }
    if (job.status === 'Stopping') return { text: 'stopping' }
    const total = job.totalRecordCount
    const done = job.processedRecordCount
    if (total > 0 && done >= total) return { text: 'finishing' }
    let rate = 0
    if (seen && done > seen.processed && now > seen.t) rate = (done - seen.processed) / (now - seen.t)
    else if (times?.inProgressAt !== undefined && done > 0 && now > times.inProgressAt)
      rate = done / (now - times.inProgressAt)
    if (!(rate > 0) || !(total > 0)) return { text: 'estimating…' }
    const ms = (total - done) / rate
    return { text: `~${fmtDuration(ms)}`, ms }
  }

  function section(id, title, inner) {
    return `<section class="card" id="${id}" aria-labelledby="${id}-h"><h2 id="${id}-h">${title}</h2><div class="body">${inner}</div></section>`
  }

  function table(head, rows, attrs = '') {
    return `<div class="scroll"><table${attrs}><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table></div>`
  }

  /**
   * Per model: where this process's requests are now (`snap.load`, serve's: waiting in the client,
   * in jobs, on-demand, in the group's hands, the fillers added), the requests settled, failed and
   * aborted, the jobs and their records. Without `snap.load` (a store read from beside its
   * processes), the records not processed yet in the jobs stand in for the requests in jobs.
   */
  function renderModels(snap) {
    const s = snap.stats
    const load = Array.isArray(snap.load) ? snap.load : undefined
    const models = new Map()
    const row = (id) => {
      let m = models.get(id)
      if (!m) {
        m = { id, success: 0, error: 0, aborted: 0, pending: 0, running: 0, jobs: 0, recOk: 0, recErr: 0 }
        Object.assign(m, { queued: 0, inJobs: 0, onDemand: 0, inGroup: 0, padded: 0 })
        models.set(id, m)
      }
      return m
    }
    for (const l of load ?? []) {
      const m = row(l.modelId)
      for (const k of ['queued', 'inJobs', 'onDemand', 'inGroup', 'padded']) m[k] = l[k]
    }
    for (const r of snap.requests ?? []) {
      const m = row(r.model)
      m.success += r.success
      m.error += r.error
      m.aborted += r.aborted
    }
    for (const j of s.jobs) {
      const m = row(j.modelId)
      m.jobs++
      if (isRunning(j)) {
        m.running++
        m.pending += Math.max(0, j.totalRecordCount - j.processedRecordCount)
      }
      m.recOk += j.successRecordCount
      m.recErr += j.errorRecordCount
    }
    const summary =
      `<dl class="figures">` +
      `<div><dt>Waiting in this process</dt><dd data-field="queued">${fmtInt(s.queued)}</dd></div>` +
      `<div><dt>In flight</dt><dd data-field="inFlight">${fmtInt(s.inFlight)}</dd></div>` +
      `<div><dt>Padded records</dt><dd data-field="padded">${fmtInt(s.padded)}</dd></div>` +
      `<div><dt>Sent on-demand</dt><dd data-field="sentDirect">${fmtInt(s.sentDirect)}</dd></div>` +
      `<div><dt>Deadline fallbacks</dt><dd data-field="deadlineFallbacks">${fmtInt(s.deadlineFallbacks)}</dd></div>` +
      `<div><dt>Resubmitted</dt><dd data-field="resubmitted">${fmtInt(s.resubmitted)}</dd></div>` +
      `</dl>`
    if (models.size === 0) return section('models', 'Models', `${summary}<p class="empty">No requests yet.</p>`)
    const grouped = load?.some((l) => l.inGroup > 0)
    const cell = (label, field, value) => `<td class="n" data-label="${label}" data-field="${field}">${value}</td>`
    let head = '<th scope="col">Model</th>'
    if (load) {
      head +=
        '<th scope="col" class="n">Waiting</th><th scope="col" class="n">In jobs</th><th scope="col" class="n">On-demand</th>' +
        (grouped ? '<th scope="col" class="n">In the group</th>' : '')
    } else head += '<th scope="col" class="n">Records in jobs</th>'
    head +=
      '<th scope="col" class="n">Answered</th><th scope="col" class="n">Failed</th><th scope="col" class="n">Aborted</th>' +
      (load ? '<th scope="col" class="n">Padded</th>' : '') +
      '<th scope="col" class="n">Jobs running / all</th><th scope="col" class="n">Records ok / error</th>'
    let rows = ''
    for (const m of [...models.values()].sort((a, b) => String(a.id).localeCompare(String(b.id)))) {
      rows += `<tr data-model="${esc(m.id)}"><th scope="row" class="model">${esc(m.id) || '<i>none</i>'}</th>`
      if (load) {
        rows +=
          cell('Waiting', 'waiting', fmtInt(m.queued)) +
          cell('In jobs', 'inJobs', fmtInt(m.inJobs)) +
          cell('On-demand', 'onDemand', fmtInt(m.onDemand)) +
          (grouped ? cell('In the group', 'inGroup', fmtInt(m.inGroup)) : '')
      } else rows += cell('Records in jobs', 'pending', fmtInt(m.pending))
      rows +=
        cell('Answered', 'answered', fmtInt(m.success)) +
        cell('Failed', 'failed', fmtInt(m.error)) +
        cell('Aborted', 'aborted', fmtInt(m.aborted)) +
        (load ? cell('Padded', 'modelPadded', fmtInt(m.padded)) : '') +
        cell('Jobs running / all', 'jobs', `${fmtInt(m.running)} / ${fmtInt(m.jobs)}`) +
        `${cell('Records ok / error', 'records', `${fmtInt(m.recOk)} / ${fmtInt(m.recErr)}`)}</tr>`
    }
    return section('models', 'Models', summary + table(head, rows, ' class="cards"'))
  }

  /** Per job: status, a progress bar of processed / total, counts, times and ETA. */
  function renderJobs(snap, seenJobs) {
    const jobs = snap.stats.jobs
    if (jobs.length === 0) return section('jobs', 'Jobs', '<p class="empty">No batch jobs yet.</p>')
    const times = snap.jobTimes ?? {}
    const now = snap.now
    // From a store: when the job was created; from serve: when this process first saw it. Each links to its page.
    const stored = snap.source === 'store'
    const head =
      '<th scope="col">Job</th><th scope="col" class="wide">Model</th><th scope="col">Status</th>' +
      '<th scope="col">Records</th><th scope="col" class="n">Ok</th><th scope="col" class="n">Errors</th>' +
      `<th scope="col" class="wide">${stored ? 'Created' : 'Started'}</th><th scope="col" class="n">Elapsed</th><th scope="col">ETA</th>`
    // Running jobs first, then the most recently seen.
    const order = [...jobs].sort(
      (a, b) =>
        Number(isRunning(b)) - Number(isRunning(a)) ||
        (times[b.jobArn]?.firstSeen ?? 0) - (times[a.jobArn]?.firstSeen ?? 0),
    )
    let rows = ''
    for (const j of order) {
      const t = times[j.jobArn]
      const total = j.totalRecordCount
      const done = j.processedRecordCount
      const pct = total > 0 ? Math.floor((100 * done) / total) : 0
      // A job that had ended before it was seen has no known end: no elapsed time.
      // serve: when the job was created where its store says so, else when this process first saw it.
      const start = t?.createdAt ?? t?.firstSeen
      const elapsed = t && (t.endedAt !== undefined || isRunning(j)) ? (t.endedAt ?? now) - start : undefined
      const e = eta(j, t, seenJobs?.get(j.jobArn), now)
      rows +=
        `<tr data-job="${esc(j.jobArn)}" data-status="${esc(j.status)}">` +
        `<th scope="row" class="job" title="${esc(j.jobArn)}"><a class="name" href="jobs/${esc(jobId(j.jobArn))}">${esc(j.jobName)}</a><span class="model-sub">${esc(j.modelId)}</span></th>` +
        `<td class="wide model">${esc(j.modelId)}</td>` +
        `<td data-label="Status"><span class="${statusClass(j.status)}" data-field="status">${esc(j.status)}</span></td>` +
        `<td class="progress-cell" data-label="Records"><progress max="${num(total)}" value="${num(done)}" aria-label="records processed">${pct}%</progress>` +
        `<span class="count"><span data-field="processed">${fmtInt(done)}</span> / <span data-field="total">${fmtInt(total)}</span></span></td>` +
        `<td class="n" data-label="Ok" data-field="success">${fmtInt(j.successRecordCount)}</td>` +
        `<td class="n${j.errorRecordCount > 0 ? ' bad' : ''}" data-label="Errors" data-field="error">${fmtInt(j.errorRecordCount)}</td>` +
        `<td class="wide" data-field="started">${t ? `${fmtClock(start)}${stored || t.createdAt !== undefined ? '' : ' (seen)'}` : '—'}</td>` +
        `<td class="n" data-label="Elapsed" data-field="elapsed">${elapsed === undefined ? '—' : fmtDuration(elapsed)}</td>` +
        `<td data-label="ETA" data-field="eta">${esc(e.text)}</td></tr>`
    }
    return section('jobs', 'Jobs', table(head, rows, ' class="cards"'))
  }

  /** Saving, cost by tier, committed spend and cap, tokens. */
  function renderSpend(snap) {
    const s = snap.stats
    const saving =
      s.estimatedSavingUsd === undefined
        ? '<dd data-field="saving" class="muted">needs the <code>pricing</code> option</dd>'
        : `<dd data-field="saving" data-usd="${num(s.estimatedSavingUsd)}" class="good">${fmtUsd(s.estimatedSavingUsd)}</dd>`
    let cap = '<dd data-field="committed" class="muted">no cap (<code>maxCostUsd</code>)</dd>'
    if (s.spend) {
      const { committedUsd, maxCostUsd } = s.spend
      cap =
        `<dd data-field="committed" data-usd="${num(committedUsd)}" data-cap="${num(maxCostUsd)}">${fmtUsd(committedUsd)} of ${fmtUsd(maxCostUsd)}` +
        `<progress max="${num(maxCostUsd)}" value="${num(Math.min(committedUsd, maxCostUsd))}" aria-label="committed spend against the cap"></progress></dd>`
    }
    const figures =
      '<dl class="figures">' +
      `<div><dt>Saved against on-demand (estimate)</dt>${saving}</div>` +
      `<div><dt>Committed spend</dt>${cap}</div>` +
      `<div><dt>Tokens in</dt><dd data-field="tokensIn">${fmtInt(s.tokens.input)}</dd></div>` +
      `<div><dt>Tokens out</dt><dd data-field="tokensOut">${fmtInt(s.tokens.output)}</dd></div>` +
      '</dl>'
    let rows = ''
    let requests = 0
    let usd = 0
    for (const tier of ['batch', 'flex', 'standard']) {
      const t = s.tiers?.[tier] ?? { requests: 0, estimatedUsd: 0 }
      requests += t.requests
      usd += t.estimatedUsd
      rows += `<tr data-tier="${tier}"><th scope="row">${tier}</th><td class="n" data-field="requests">${fmtInt(t.requests)}</td><td class="n" data-field="usd" data-usd="${num(t.estimatedUsd)}">${fmtUsd(t.estimatedUsd)}</td></tr>`
    }
    rows += `<tr class="total"><th scope="row">total</th><td class="n">${fmtInt(requests)}</td><td class="n" data-field="costUsd" data-usd="${num(usd)}">${fmtUsd(usd)}</td></tr>`
    const tiers = table(
      '<th scope="col">Tier</th><th scope="col" class="n">Answered</th><th scope="col" class="n">Cost (estimate)</th>',
      rows,
    )
    return section('spend', 'Spend', figures + tiers)
  }

  function ago(ms) {
    return Number.isFinite(ms) && ms >= 0 ? `${fmtDuration(ms)} ago` : 'now'
  }

  /**
   * A group's member processes (`snap.members`: `[{ host, pid, since, leads, self?, lastSeen? }]`)
   * and which one leads, as a table; `snap.membersError` when they could not be read. Shared by
   * serve's page and a store's.
   */
  function renderMembers(snap) {
    if (snap.membersError) return `<p class="empty">Members not read: ${esc(snap.membersError)}</p>`
    const members = snap.members ?? []
    if (members.length === 0) return '<p class="empty">No member process in the group now.</p>'
    const head =
      '<th scope="col">Host</th><th scope="col" class="n">PID</th><th scope="col">Role</th>' +
      '<th scope="col">Member since</th><th scope="col">Last seen</th>'
    let rows = ''
    for (const m of members)
      rows +=
        `<tr data-member="${esc(m.host)}:${num(m.pid)}" data-leads="${Boolean(m.leads)}"${m.self ? ' data-self="true"' : ''}><th scope="row">${esc(m.host)}</th>` +
        `<td class="n" data-label="PID" data-field="pid">${num(m.pid)}</td>` +
        `<td data-label="Role"><span data-field="role" class="${m.leads ? 'good' : ''}">${m.leads ? 'leads the group' : 'member'}</span>${m.self ? '<br><span class="muted">this process</span>' : ''}</td>` +
        `<td data-label="Member since">${fmtClock(m.since)}</td>` +
        `<td data-label="Last seen" data-field="lastSeen">${Number.isFinite(m.lastSeen) ? `${fmtClock(m.lastSeen)} (${esc(ago(snap.now - m.lastSeen))})` : `alive at ${fmtClock(snap.now)}`}</td></tr>`
    return table(head, rows, ' class="cards members"')
  }

  /**
   * The failed records of each job by error name (`snap.recordErrors`: `{ [jobArn]: { [name]:
   * count } }`), linked to the jobs' pages; '' when there is none.
   */
  function renderRecordErrors(snap) {
    const byJob = snap.recordErrors ?? {}
    const names = new Map(snap.stats.jobs.map((j) => [j.jobArn, j]))
    let rows = ''
    for (const [arn, codes] of Object.entries(byJob))
      for (const [code, count] of Object.entries(codes).sort((a, b) => b[1] - a[1])) {
        const j = names.get(arn)
        rows +=
          `<tr data-job="${esc(arn)}" data-error="${esc(code)}"><td><a href="jobs/${esc(jobId(arn))}" title="${esc(j?.modelId)}">${esc(j?.jobName ?? jobId(arn))}</a></td>` +
          `<td>${esc(code)}</td><td class="n" data-field="count">${fmtInt(count)}</td></tr>`
      }
    if (!rows) return ''
    const head = '<th scope="col">Job</th><th scope="col">Error</th><th scope="col" class="n">Records</th>'
    return table(head, rows, ' class="record-errors"')
  }

  /** A job's ARN as a link to its page when `jobs` (of the snapshot) has it, else its id with the ARN as a title. */
  function jobLink(jobArn, jobs) {
    const j = jobs.find((x) => x.jobArn === jobArn)
    if (!j) return `<span title="${esc(jobArn)}">${esc(jobId(jobArn))}</span>`
    return `<a href="jobs/${esc(jobId(jobArn))}" title="${esc(jobArn)}">${esc(j.jobName)}</a>`
  }

  /**
   * The last failures, newest first (`snap.failures`: `[{ at?, model, operation?, error, message,
   * jobArn?, recordId? }]`): the exception's name and message, when, where; '' when there is none.
   * A column no failure has (a store keeps no time or operation per record) is left out, and the
   * job's with `job: false` (a job's own page). Shared by serve's page and a store's.
   */
  function renderFailures(snap, { job = true } = {}) {
    const failures = snap.failures ?? []
    if (failures.length === 0) return ''
    const has = (k) => failures.some((f) => f[k] !== undefined)
    const cols = { at: has('at'), operation: has('operation'), job: job && has('jobArn'), record: has('recordId') }
    const jobs = snap.stats.jobs
    const head =
      '<th scope="col">Exception</th>' +
      (cols.at ? '<th scope="col">When</th>' : '') +
      '<th scope="col">Model</th>' +
      (cols.operation ? '<th scope="col">Operation</th>' : '') +
      (cols.job ? '<th scope="col">Job</th>' : '') +
      (cols.record ? '<th scope="col">Record</th>' : '') +
      '<th scope="col">Message</th>'
    let rows = ''
    for (const f of failures)
      rows +=
        `<tr data-failure="${esc(f.error)}"${f.jobArn ? ` data-job="${esc(f.jobArn)}"` : ''}><th scope="row" data-field="error">${esc(f.error)}</th>` +
        (cols.at
          ? `<td data-label="When" data-field="at" title="${esc(ago(snap.now - f.at))}">${fmtClock(f.at)}</td>`
          : '') +
        `<td class="model" data-label="Model" data-field="model">${esc(f.model) || '<i>none</i>'}</td>` +
        (cols.operation ? `<td data-label="Operation" data-field="operation">${esc(f.operation ?? '—')}</td>` : '') +
        (cols.job ? `<td data-label="Job" data-field="job">${f.jobArn ? jobLink(f.jobArn, jobs) : '—'}</td>` : '') +
        (cols.record ? `<td data-label="Record" data-field="record">${esc(f.recordId ?? '—')}</td>` : '') +
        `<td class="message" data-field="message">${esc(f.message)}</td></tr>`
    return table(head, rows, ' class="cards failures"')
  }

  /** The store, and in a group whether this process leads it and the group's member processes. */
  function renderGroup(snap) {
    const s = snap.stats
    let inner
    if (!s.store) inner = '<p class="empty">No store: the jobs live in this process only.</p>'
    else {
      const lead =
        s.leader === undefined
          ? ''
          : `<div><dt>This process</dt><dd data-field="leader" data-leader="${s.leader}" class="${s.leader ? 'good' : ''}">${s.leader ? 'leads the group' : 'a member (another process leads)'}</dd></div>`
      inner =
        '<dl class="figures">' +
        `<div><dt>Store</dt><dd data-field="store">${esc(s.store.kind === 'postgres' ? 'PostgreSQL group' : 'journal (SQLite)')}</dd></div>` +
        `<div class="long"><dt>Location</dt><dd><code>${esc(s.store.location)}</code></dd></div>` +
        `<div><dt>Size</dt><dd>${fmtInt(s.store.bytes)} bytes</dd></div>` +
        lead +
        '</dl>'
      if (s.store.kind === 'postgres') inner += renderMembers(snap)
    }
    return section('group', 'Store and group', inner)
  }

  /**
   * The last failures with their messages; the failed requests by model and exception name; with
   * a store, the failed records of ended jobs by error name.
   */
  function renderErrors(snap) {
    const errors = [...(snap.errors ?? [])].sort((a, b) => b.count - a.count)
    const note =
      '<p class="note">The last 50 failures of this process, with the messages AWS or the bridge gave (they name the members at fault, never a body\'s contents; cut at 300 characters). Request bodies and answers are never kept here.</p>'
    const last = renderFailures(snap)
    const failures = `<h3>Last failures</h3>${last || '<p class="empty" data-field="noFailures">No failed requests.</p>'}`
    let records = ''
    if (snap.stats.jobs.length) {
      const t = renderRecordErrors(snap)
      records = `<h3>Failed records by job</h3>${t || '<p class="empty" data-field="noRecordErrors">No failed records.</p>'}`
    }
    let requests = ''
    if (errors.length) {
      let rows = ''
      for (const e of errors)
        rows += `<tr><td class="model">${esc(e.model)}</td><td>${esc(e.error)}</td><td class="n" data-field="count">${fmtInt(e.count)}</td></tr>`
      const head = '<th scope="col">Model</th><th scope="col">Exception</th><th scope="col" class="n">Requests</th>'
      requests = `<h3>Failed requests by exception</h3>${table(head, rows, ' class="request-errors"')}`
    }
    return section('errors', 'Errors', failures + requests + records + note)
  }

  /** The settled count and running jobs of a snapshot, for the timeline. */
  function timelinePoint(snap) {
    let settled = 0
    if (snap.source === 'store') for (const j of snap.stats.jobs) settled += j.processedRecordCount
    else for (const m of snap.requests ?? []) settled += m.success + m.error + m.aborted
    return { t: snap.now - (snap.now % MINUTE_MS), settled, running: snap.stats.jobs.filter(isRunning).length }
  }

  /** Adds a snapshot to a history (`{ base, buckets }`, as the server sends it); returns it. */
  function record(history, snap) {
    const p = timelinePoint(snap)
    const last = history.buckets[history.buckets.length - 1]
    if (last && last.t === p.t) {
      last.settled = Math.max(last.settled, p.settled)
      last.running = Math.max(last.running, p.running)
    } else if (!last || p.t > last.t) history.buckets.push(p)
    while (history.buckets.length > 720) history.base = history.buckets.shift().settled
    return history
  }

  /** Per minute over the last TIMELINE_MINUTES: `{ t, settled (that minute), running }`, gaps filled. */
  function minutes(history, now) {
    const buckets = history.buckets
    if (buckets.length === 0) return []
    const end = Math.max(now - (now % MINUTE_MS), buckets[buckets.length - 1].t)
    const start = Math.max(buckets[0].t, end - (TIMELINE_MINUTES - 1) * MINUTE_MS)
    const out = []
    let i = 0
    let cumulative = history.base ?? 0
    let running = 0
    while (i < buckets.length && buckets[i].t < start) {
      cumulative = buckets[i].settled
      running = buckets[i].running
      i++
    }
    for (let t = start; t <= end; t += MINUTE_MS) {
      let settled = 0
      if (i < buckets.length && buckets[i].t === t) {
        settled = Math.max(0, buckets[i].settled - cumulative)
        cumulative = buckets[i].settled
        running = buckets[i].running
        i++
      }
      out.push({ t, settled, running })
    }
    return out
  }

  /** The timeline: bars of requests settled per minute, a step line of jobs running. */
  function renderTimeline(history, now, what = 'requests settled') {
    const points = minutes(history, now)
    if (points.length === 0) return section('timeline', 'Timeline', '<p class="empty">Nothing settled yet.</p>')
    const W = 600
    const H = 160
    const top = 14
    const bottom = 20
    const left = 36
    const right = 30
    const plotH = H - top - bottom
    const n = Math.max(points.length, 10)
    const step = (W - left - right) / n
    const maxSettled = Math.max(1, ...points.map((p) => p.settled))
    const maxRunning = Math.max(1, ...points.map((p) => p.running))
    const y = (v, max) => top + plotH - (plotH * v) / max
    let bars = ''
    let line = ''
    points.forEach((p, k) => {
      const x = left + k * step
      const h = (plotH * p.settled) / maxSettled
      if (p.settled > 0)
        bars += `<rect class="bar" x="${(x + 1).toFixed(1)}" y="${(top + plotH - h).toFixed(1)}" width="${Math.max(1, step - 2).toFixed(1)}" height="${h.toFixed(1)}"><title>${fmtClock(p.t)}: ${fmtInt(p.settled)} ${what}, ${fmtInt(p.running)} jobs running</title></rect>`
      const yr = y(p.running, maxRunning).toFixed(1)
      line += `${k === 0 ? 'M' : 'L'}${x.toFixed(1)},${yr}H${(x + step).toFixed(1)}`
    })
    const total = points.reduce((a, p) => a + p.settled, 0)
    const last = points[points.length - 1]
    const svg =
      `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${what[0].toUpperCase()}${what.slice(1)} per minute and jobs running, last ${points.length} minutes" data-minutes="${points.length}" data-settled="${total}">` +
      `<line class="axis" x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}"/>` +
      `<text class="tick" x="${left - 4}" y="${top + 4}" text-anchor="end">${fmtInt(maxSettled)}</text>` +
      `<text class="tick" x="${left - 4}" y="${top + plotH}" text-anchor="end">0</text>` +
      `<text class="tick run" x="${W - right + 4}" y="${top + 4}">${fmtInt(maxRunning)}</text>` +
      (points.length > 2
        ? `<text class="tick" x="${left}" y="${H - 4}">${fmtClock(points[0].t).slice(0, 5)}</text>`
        : '') +
      `<text class="tick" x="${(left + points.length * step).toFixed(1)}" y="${H - 4}" text-anchor="end">${fmtClock(last.t).slice(0, 5)} UTC</text>` +
      bars +
      `<path class="running" d="${line}"/>` +
      '</svg>'
    const legend =
      `<p class="legend"><span class="key bar"></span>${what} per minute (left scale) ` +
      '<span class="key running"></span>jobs running (right scale)</p>'
    return section('timeline', 'Timeline', svg + legend)
  }

  /** Sections of other sources than serve (`snap.source`), registered by their view file (store-view.js). */
  const SOURCES = {}

  function registerSource(name, source) {
    SOURCES[name] = source
  }

  /** Every section, in page order. */
  function renderSections(snap, history, seenJobs) {
    const source = SOURCES[snap.source]
    if (source) return source.renderSections(snap, history, seenJobs)
    return (
      renderJobs(snap, seenJobs) +
      renderModels(snap) +
      renderSpend(snap) +
      renderTimeline(history, snap.now) +
      renderGroup(snap) +
      renderErrors(snap)
    )
  }

  /** The line under the title: when the view was made. */
  function renderLive(snap, live) {
    if (snap.readError) return `Store not read at ${fmtClock(snap.now)} (${snap.readError}): retrying`
    return live
      ? `Live: updated ${fmtClock(snap.now)}`
      : `Server view at ${fmtClock(snap.now)} (live updates need JavaScript)`
  }

  /** serve's title line and footer. */
  function serveFrame(snap) {
    return {
      sub: `serve, running since ${fmtClock(snap.startedAt)}`,
      footer:
        'Data: <a href="stats">/_bridge/stats</a> · <a href="metrics">/_bridge/metrics</a> · counts of this process since it started.',
    }
  }

  /**
   * The whole page; `seed` goes in a JSON data block (`<` escaped) for the page's script.
   * `scripts`: the view files of the page's source after view.js; `pollMs`: how often it polls.
   */
  function renderPage(snap, history, { assets = 'assets/', scripts = [], pollMs } = {}) {
    const seed = JSON.stringify({ snapshot: snap, history, pollMs }).replace(/</g, '\\u003c')
    const frame = (SOURCES[snap.source]?.frame ?? serveFrame)(snap)
    const views = ['view.js', ...scripts].map((f) => `<script src="${assets}${f}" defer></script>`).join('')
    return (
      '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
      '<meta name="viewport" content="width=device-width, initial-scale=1">' +
      '<title>bedrock-batch-bridge: dashboard</title>' +
      `<link rel="stylesheet" href="${assets}dashboard.css">` +
      `<link rel="icon" href="${assets}favicon.svg" type="image/svg+xml">` +
      `${views}<script src="${assets}dashboard.js" defer></script>` +
      '</head><body>' +
      '<header><h1>bedrock-batch-bridge</h1>' +
      `<p class="sub">${frame.sub} · <span id="live" role="status">${esc(renderLive(snap, false))}</span></p></header>` +
      `<main id="sections">${renderSections(snap, history)}</main>` +
      `<footer>${frame.footer}</footer>` +
      `<script type="application/json" id="seed">${seed}</script>` +
      '</body></html>'
    )
  }

  return {
    TERMINAL,
    esc,
    num,
    section,
    table,
    statusClass,
    isRunning,
    jobId,
    registerSource,
    fmtInt,
    fmtUsd,
    fmtDuration,
    fmtClock,
    eta,
    record,
    minutes,
    renderModels,
    renderJobs,
    renderSpend,
    renderGroup,
    renderMembers,
    renderRecordErrors,
    renderFailures,
    renderErrors,
    renderTimeline,
    renderSections,
    renderLive,
    renderPage,
  }
})
