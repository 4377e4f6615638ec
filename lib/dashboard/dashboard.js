'use strict'
  // The dashboard page's script: polls /_bridge/dashboard.json every 2 seconds (or the seed's pollMs) and redraws the
  // sections with the same views the server rendered the first view with (view.js). It keeps the
  // timeline (seeded from the server's history) and each job's first observed progress (for the ETA)
  // itself. It only reads: no request is ever sent from here but the poll.
;(() => {
  const D = globalThis.BridgeDashboard
  const seedNode = document.getElementById('seed')
  if (!D || !seedNode) return
  const seed = JSON.parse(seedNode.textContent)
  const POLL_MS = seed.pollMs ?? 2000
  const history = seed.history ?? { base: 0, buckets: [] }
  // By job ARN: the first time (server clock) and processed count this page saw it at.
  const seen = new Map()
  const sections = document.getElementById('sections')
  const live = document.getElementById('live')
  let polls = 0

  function observe(snap) {
    for (const j of snap.stats.jobs) {
      const first = seen.get(j.jobArn)
      // The rate is measured from the first poll that saw the job InProgress.
      const running = j.status === 'InProgress'
      if (!first || (running && !first.running))
        seen.set(j.jobArn, { t: snap.now, processed: j.processedRecordCount, running })
    }
  }

  function draw(snap) {
    D.record(history, snap)
    observe(snap)
    sections.innerHTML = D.renderSections(snap, history, seen)
    live.textContent = D.renderLive(snap, true)
    live.classList.toggle('lost', Boolean(snap.readError))
    document.body.dataset.polls = String(polls)
  }

  async function poll() {
    try {
      const res = await fetch('dashboard.json', { cache: 'no-store', credentials: 'same-origin' })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const snap = await res.json()
      polls++
      draw(snap)
    } catch (err) {
      live.textContent = `Connection lost (${err.message}): retrying`
      live.classList.add('lost')
    }
    setTimeout(poll, POLL_MS)
  }

  draw(seed.snapshot)
  setTimeout(poll, POLL_MS)
})()
