'use strict'
  // The dashboard's sections for a store read from beside the processes that own it (the
  // `bedrock-batch-bridge dashboard` command): the jobs (view.js's table), per model totals, the
  // committed spend, the group's member processes, and the failed records by error code, the last of
  // them with their messages. The page loads this file after view.js; the server requires it. The
  // data are the store's jobs (names, statuses, counts), error names and messages (AWS's or the
  // bridge's words, which name members, not values) and the members' host names and pids: never a
  // body or an answer.
;((root, factory) => {
  const base = typeof module === 'object' && module.exports ? require('./view.js') : root.BridgeDashboard
  const api = factory(base)
  base.registerSource('store', api)
  if (typeof module === 'object' && module.exports) module.exports = api
})(globalThis, (D) => {
  const { esc, num, fmtInt, fmtUsd, fmtClock, section, table, isRunning } = D

  /** What a store cannot tell, said once on the page. */
  const UNSEEN =
    'Requests waiting inside the processes (queued, or in flight before their job exists) are not in the store: this page cannot see them, nor tokens or cost by tier. Job counts are those the owning process last wrote (at each status change, and as its answered counts move).'

  function storeName(store) {
    return store?.kind === 'postgres' ? 'PostgreSQL group' : 'journal (SQLite)'
  }

  /** Per model: jobs running / all, records in them, processed, ok, with an error, still to process. */
  function renderModels(snap) {
    const models = new Map()
    for (const j of snap.stats.jobs) {
      let m = models.get(j.modelId)
      if (!m) {
        m = { id: j.modelId, running: 0, jobs: 0, total: 0, processed: 0, ok: 0, error: 0, pending: 0 }
        models.set(j.modelId, m)
      }
      m.jobs++
      m.total += j.totalRecordCount
      m.processed += j.processedRecordCount
      m.ok += j.successRecordCount
      m.error += j.errorRecordCount
      if (isRunning(j)) {
        m.running++
        m.pending += Math.max(0, j.totalRecordCount - j.processedRecordCount)
      }
    }
    const note = `<p class="note" data-field="unseen">${esc(UNSEEN)}</p>`
    if (models.size === 0) return section('models', 'Models', `<p class="empty">No jobs in the store yet.</p>${note}`)
    const head =
      '<th scope="col">Model</th><th scope="col" class="n">Jobs running / all</th><th scope="col" class="n">Records</th>' +
      '<th scope="col" class="n">Processed</th><th scope="col" class="n">Ok</th><th scope="col" class="n">Errors</th>' +
      '<th scope="col" class="n">Still to process</th>'
    let rows = ''
    for (const m of [...models.values()].sort((a, b) => String(a.id).localeCompare(String(b.id))))
      rows +=
        `<tr data-model="${esc(m.id)}"><th scope="row" class="model">${esc(m.id) || '<i>none</i>'}</th>` +
        `<td class="n" data-label="Jobs running / all" data-field="jobs">${fmtInt(m.running)} / ${fmtInt(m.jobs)}</td>` +
        `<td class="n" data-label="Records" data-field="total">${fmtInt(m.total)}</td>` +
        `<td class="n" data-label="Processed" data-field="processed">${fmtInt(m.processed)}</td>` +
        `<td class="n" data-label="Ok" data-field="success">${fmtInt(m.ok)}</td>` +
        `<td class="n${m.error > 0 ? ' bad' : ''}" data-label="Errors" data-field="error">${fmtInt(m.error)}</td>` +
        `<td class="n" data-label="Still to process" data-field="pending">${fmtInt(m.pending)}</td></tr>`
    return section('models', 'Models', table(head, rows, ' class="cards"') + note)
  }

  /** The committed spend the store keeps (with maxCostUsd), when it keeps one. */
  function renderSpend(snap) {
    const usd = snap.spend?.committedUsd
    const dd =
      usd === undefined || usd === null
        ? `<dd data-field="committed" class="muted">${esc(snap.spend?.error ?? 'not kept by this store')}</dd>`
        : `<dd data-field="committed" data-usd="${num(usd)}">${fmtUsd(usd)}</dd>`
    return section(
      'spend',
      'Spend',
      `<dl class="figures"><div><dt>Committed spend (upper bound of what was sent, counted under maxCostUsd)</dt>${dd}</div></dl>` +
        '<p class="note">Estimated cost, tokens and saving are counted by each process: see its own /_bridge/ or metrics.</p>',
    )
  }

  /** The store, and for a group its member processes and which one leads. */
  function renderGroup(snap) {
    const s = snap.store
    const figures =
      '<dl class="figures">' +
      `<div><dt>Store</dt><dd data-field="store">${esc(storeName(s))}</dd></div>` +
      `<div class="long"><dt>Location</dt><dd><code>${esc(s?.location)}</code></dd></div>` +
      '</dl>'
    if (s?.kind !== 'postgres')
      return section(
        'group',
        'Store and owner',
        `${figures}<p class="note">A journal has one owner, the process that holds its lock; this page reads it beside that process.</p>`,
      )
    return section('group', 'Store and group', figures + D.renderMembers(snap))
  }

  /** The failed records of each job, by the error name of its stored answers, and the last of them with their messages. */
  function renderErrors(snap) {
    const note =
      "<p class=\"note\">From the answers stored for ended jobs: error names, counts and the messages of the last 50 read (AWS's or the bridge's words, which name the members at fault, never a body's contents; cut at 300 characters), never a request body or an answer.</p>"
    const rows = D.renderRecordErrors(snap)
    if (!rows) return section('errors', 'Failed records', `<p class="empty">No failed records stored.</p>${note}`)
    return section('errors', 'Failed records', `${rows}<h3>Last failed records</h3>${D.renderFailures(snap)}${note}`)
  }

  function renderSections(snap, history, seenJobs) {
    return (
      D.renderJobs(snap, seenJobs) +
      renderModels(snap) +
      renderSpend(snap) +
      D.renderTimeline(history, snap.now, 'records processed') +
      renderGroup(snap) +
      renderErrors(snap)
    )
  }

  /** The title line and footer of a store's page. */
  function frame(snap) {
    return {
      sub: `${esc(storeName(snap.store))} <code>${esc(snap.store?.location)}</code>, read since ${fmtClock(snap.startedAt)}`,
      footer: `Data: <a href="dashboard.json">/_bridge/dashboard.json</a> · <a href="metrics">/_bridge/metrics</a> · read from the store without its lock; requests waiting inside the processes are not in it.`,
    }
  }

  /**
   * One job's page (`/_bridge/jobs/<id>`), rendered on the server: its figures, its failed records
   * by error name and the last of them with their messages, and the commands that show it and
   * write its answers.
   */
  function renderJobPage(snap, job, { commands = [], assets = '../assets/', where, created = 'Created' } = {}) {
    const from = where ?? `${esc(storeName(snap.store))} <code>${esc(snap.store?.location)}</code>`
    const times = snap.jobTimes?.[job.jobArn]
    const codes = Object.entries(snap.recordErrors?.[job.jobArn] ?? {}).sort((a, b) => b[1] - a[1])
    const fig = (label, field, value) => `<div><dt>${label}</dt><dd data-field="${field}">${value}</dd></div>`
    const figures =
      '<dl class="figures">' +
      fig('Status', 'status', `<span class="${D.statusClass(job.status)}">${esc(job.status)}</span>`) +
      fig('Model', 'model', esc(job.modelId)) +
      fig('Records processed', 'processed', `${fmtInt(job.processedRecordCount)} / ${fmtInt(job.totalRecordCount)}`) +
      fig('Ok', 'success', fmtInt(job.successRecordCount)) +
      fig('Errors', 'error', fmtInt(job.errorRecordCount)) +
      fig(created, 'created', fmtClock(times?.firstSeen)) +
      fig('ETA', 'eta', esc(D.eta(job, times, undefined, snap.now).text)) +
      `<div class="long"><dt>ARN</dt><dd><code data-field="arn">${esc(job.jobArn)}</code></dd></div>` +
      '</dl>'
    let errors = '<p class="empty">No failed records stored for this job.</p>'
    if (codes.length)
      errors = table(
        '<th scope="col">Error</th><th scope="col" class="n">Records</th>',
        codes
          .map(([c, n]) => `<tr data-error="${esc(c)}"><td>${esc(c)}</td><td class="n">${fmtInt(n)}</td></tr>`)
          .join(''),
      )
    const last = D.renderFailures(
      { ...snap, failures: (snap.failures ?? []).filter((f) => f.jobArn === job.jobArn) },
      { job: false },
    )
    if (last) errors += `<h3>Last failures</h3>${last}`
    const cmds = commands.map((c) => `<pre><code>${esc(c)}</code></pre>`).join('')
    return (
      '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
      '<meta name="viewport" content="width=device-width, initial-scale=1">' +
      `<title>${esc(job.jobName)}: bedrock-batch-bridge</title>` +
      `<link rel="stylesheet" href="${assets}dashboard.css"><link rel="icon" href="${assets}favicon.svg" type="image/svg+xml">` +
      '</head><body>' +
      `<header><h1>${esc(job.jobName)}</h1><p class="sub"><a href="../">all jobs</a> · ${from} · at ${fmtClock(snap.now)} (reload for newer figures)</p></header>` +
      `<main id="sections">${section('job', 'Job', figures)}${section('errors', 'Failed records by error', errors)}${section('commands', 'On the command line', cmds)}</main>` +
      '</body></html>'
    )
  }

  return { renderSections, frame, renderJobPage, renderModels, renderSpend, renderGroup, renderErrors, UNSEEN }
})
