// The dashboard page of `serve` (GET /_bridge/) in a real browser: Debian's chromium, headless,
// driven by puppeteer-core (which downloads nothing). `.ci/run` installs chromium with apt-get when
// it is missing; a machine without it FAILS these tests (set CHROMIUM_BIN to use another binary).
// serve runs as its users run it (node cli.js serve) against the emulator; its `[[job:slow]]`
// marker holds the job InProgress (half its records answered) for `slowJobSeconds`, then the job
// completes on its own, which the page must show without a reload. Screenshots go to artifacts/
// (CI keeps that folder).

import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ListModelInvocationJobsCommand } from '@aws-sdk/client-bedrock'
import test from 'ava'
import parsePrometheus from 'parse-prometheus-text-format'

import { launch } from './browser.mjs'
import { CLAUDE, claudeBody, PG_URL, pgTest, startEmu, startServe, tempDir, unique, waitFor } from './helpers.mjs'

const { NativeStoreReader } = createRequire(import.meta.url)('../binding.js')
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))
const PRICING = { [CLAUDE]: { inputPer1kTokens: 0.25, outputPer1kTokens: 1.25 } }
const LAPTOP = { width: 1280, height: 900 }
const PHONE = { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

/** A raw InvokeModel call through serve (as an SDK sends it). */
function invoke(url, prompt) {
  return fetch(`${url}/model/${encodeURIComponent(CLAUDE)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'amz-sdk-invocation-id': randomUUID() },
    body: JSON.stringify(claudeBody(prompt)),
  }).then(async (res) => ({ status: res.status, text: await res.text() }))
}

/** The emulator's jobs whose name contains `prefix`. */
async function emulatorJobs(bedrock, prefix) {
  const res = await bedrock.send(new ListModelInvocationJobsCommand({ nameContains: prefix, maxResults: 100 }))
  return res.invocationJobSummaries ?? []
}

/** What the page shows of each job, by ARN. */
function jobRows(page) {
  return page.evaluate(() => {
    const out = {}
    for (const tr of document.querySelectorAll('#jobs tr[data-job]')) {
      const field = (name) => tr.querySelector(`[data-field="${name}"]`)?.textContent.trim()
      const bar = tr.querySelector('progress')
      out[tr.dataset.job] = {
        name: tr.querySelector('.name')?.textContent,
        status: field('status'),
        processed: field('processed'),
        total: field('total'),
        success: field('success'),
        error: field('error'),
        eta: field('eta'),
        barValue: bar ? Number(bar.getAttribute('value')) : null,
        barMax: bar ? Number(bar.getAttribute('max')) : null,
      }
    }
    return out
  })
}

/** What the page should show of each job of `stats`. */
function expectedRows(stats) {
  const out = {}
  for (const j of stats.jobs)
    out[j.jobArn] = {
      name: j.jobName,
      status: j.status,
      processed: j.processedRecordCount.toLocaleString('en-US'),
      total: j.totalRecordCount.toLocaleString('en-US'),
      success: j.successRecordCount.toLocaleString('en-US'),
      error: j.errorRecordCount.toLocaleString('en-US'),
      barValue: j.processedRecordCount,
      barMax: j.totalRecordCount,
    }
  return out
}

const usd = (v) => `$${Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4)}`

/** Waits until the page's job rows show what `stats` says (status, counts, bars), then returns them. */
async function pageMatches(page, stats, timeout = 15_000) {
  const expected = expectedRows(stats)
  await page
    .waitForFunction(
      (expected) => {
        const rows = document.querySelectorAll('#jobs tr[data-job]')
        if (rows.length !== Object.keys(expected).length) return false
        for (const tr of rows) {
          const e = expected[tr.dataset.job]
          const field = (name) => tr.querySelector(`[data-field="${name}"]`)?.textContent.trim()
          const bar = tr.querySelector('progress')
          if (
            !e ||
            field('status') !== e.status ||
            field('processed') !== e.processed ||
            field('total') !== e.total ||
            field('success') !== e.success ||
            field('error') !== e.error ||
            Number(bar.getAttribute('value')) !== e.barValue ||
            Number(bar.getAttribute('max')) !== e.barMax
          )
            return false
        }
        return true
      },
      { timeout, polling: 100 },
      expected,
    )
    .catch(() => {})
  return { expected, shown: await jobRows(page) }
}

test('the dashboard shows the jobs, progress, counts and saving of /_bridge/stats, live, from InProgress to Completed; no body or credential on it', async (t) => {
  const browser = await launch(t)
  const { emu, bedrock } = await startEmu(t, { slowJobSeconds: 20 })
  const canary = `canary-${randomUUID()}`
  const apiKey = `sk-canary-${randomUUID()}`
  const srv = await startServe(t, emu, {
    prefix: unique('dash'),
    config: { pricing: PRICING, maxCostUsd: 50 },
    args: ['--api-key', apiKey],
  })

  // One job of six requests (padded to 100 records): held InProgress by the slow marker, one record fails.
  const prompts = [
    `hold the job ${canary} [[job:slow]]`,
    `fail this record ${canary} [[error:400]]`,
    ...[1, 2, 3, 4].map((i) => `question ${i} ${canary}`),
  ]
  const calls = Promise.all(prompts.map((p) => invoke(srv.url, p)))
  const held = await waitFor(
    'a job InProgress with half its records processed',
    async () => {
      const s = await srv.stats()
      return s.jobs.length === 1 && s.jobs[0].status === 'InProgress' && s.jobs[0].processedRecordCount > 0 ? s : null
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  )

  const page = await browser.newPage()
  await page.setViewport(LAPTOP)
  const consoleErrors = []
  page.on('pageerror', (err) => consoleErrors.push(String(err)))
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
  const res = await page.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
  t.is(res.status(), 200)
  t.regex(res.headers()['content-security-policy'], /default-src 'none'/)
  // A mark that a reload would lose.
  await page.evaluate(() => {
    window.__notReloaded = true
  })

  // While InProgress: the rows, bars and counts are the stats' (which hold still while the job is held).
  await page.waitForFunction(() => Number(document.body.dataset.polls) >= 1, { timeout: 15_000 })
  let stats = await srv.stats()
  t.is(stats.jobs[0].status, 'InProgress', 'still held while the page is checked (slowJobSeconds too short?)')
  t.is(stats.jobs[0].processedRecordCount, held.jobs[0].processedRecordCount)
  let { expected, shown } = await pageMatches(page, stats)
  for (const arn of Object.keys(expected)) t.like(shown[arn], expected[arn], `job ${arn} while InProgress`)
  const arn = stats.jobs[0].jobArn
  t.true(shown[arn].processed !== shown[arn].total, 'half done')
  t.regex(shown[arn].eta, /^~\d|estimating/, `an ETA from the progress rate: ${shown[arn].eta}`)
  // The emulator's jobs are the page's.
  const emuJobs = await emulatorJobs(bedrock, srv.prefix)
  t.deepEqual(emuJobs.map((j) => j.jobArn).sort(), Object.keys(shown).sort())
  t.is(emuJobs[0].status, 'InProgress')
  t.is(await page.$eval('#models [data-field="padded"]', (e) => e.textContent), stats.padded.toLocaleString('en-US'))
  t.is(stats.padded, stats.jobs[0].totalRecordCount - prompts.length)
  // Per model: the six requests are in the held job; the fillers are the model's.
  const modelRow = await page.$eval('#models tr[data-model]', (tr) =>
    Object.fromEntries([...tr.querySelectorAll('[data-field]')].map((c) => [c.dataset.field, c.textContent.trim()])),
  )
  t.like(modelRow, {
    waiting: '0',
    inJobs: String(prompts.length),
    onDemand: '0',
    modelPadded: stats.padded.toLocaleString('en-US'),
  })
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-inprogress.png') })

  // The job completes on its own: the page follows without a reload.
  await page.waitForFunction(
    (arn) => document.querySelector(`#jobs tr[data-job="${arn}"]`)?.dataset.status === 'Completed',
    { timeout: 60_000, polling: 200 },
    arn,
  )
  t.true(await page.evaluate(() => window.__notReloaded === true), 'the page was not reloaded')
  const answers = await calls
  t.deepEqual(
    answers.map((a) => a.status),
    [200, 400, 200, 200, 200, 200],
  )
  stats = await srv.stats()
  t.is(stats.jobs[0].status, 'Completed')
  t.is((await emulatorJobs(bedrock, srv.prefix))[0].status, 'Completed')
  ;({ expected, shown } = await pageMatches(page, stats))
  for (const a of Object.keys(expected)) t.like(shown[a], expected[a], `job ${a} once Completed`)
  t.is(shown[arn].processed, shown[arn].total)
  t.is(shown[arn].eta, 'ended')
  t.is(Number(shown[arn].error), 1, 'the [[error:400]] record')

  // The figures: saving, cost by tier, tokens, requests per model, errors, the timeline.
  await page.waitForFunction(
    (n) => document.querySelector('#models tr[data-model] [data-field="answered"]')?.textContent === String(n),
    { timeout: 15_000 },
    prompts.length - 1,
  )
  const figures = await page.evaluate(() => {
    const q = (sel) => document.querySelector(sel)
    return {
      saving: q('#spend [data-field="saving"]').textContent,
      savingUsd: Number(q('#spend [data-field="saving"]').dataset.usd),
      batchRequests: q('#spend tr[data-tier="batch"] [data-field="requests"]').textContent,
      batchUsd: Number(q('#spend tr[data-tier="batch"] [data-field="usd"]').dataset.usd),
      committed: Number(q('#spend [data-field="committed"]').dataset.usd),
      cap: Number(q('#spend [data-field="committed"]').dataset.cap),
      tokensIn: q('#spend [data-field="tokensIn"]').textContent,
      tokensOut: q('#spend [data-field="tokensOut"]').textContent,
      answered: q('#models tr[data-model] [data-field="answered"]').textContent,
      failed: q('#models tr[data-model] [data-field="failed"]').textContent,
      errors: [...document.querySelectorAll('#errors table.request-errors tbody tr')].map((tr) => tr.textContent),
      failures: [...document.querySelectorAll('#errors tr[data-failure]')].map((tr) => ({
        error: tr.querySelector('[data-field="error"]').textContent,
        message: tr.querySelector('[data-field="message"]').textContent,
        job: tr.dataset.job,
      })),
      timelineSettled: Number(q('#timeline svg.chart')?.dataset.settled),
      bars: document.querySelectorAll('#timeline svg.chart rect.bar').length,
    }
  })
  t.true(stats.estimatedSavingUsd > 0, 'the pricing option gives a saving')
  t.is(figures.savingUsd, stats.estimatedSavingUsd)
  t.is(figures.saving, usd(stats.estimatedSavingUsd))
  t.is(figures.batchRequests, String(stats.tiers.batch.requests))
  t.is(figures.batchUsd, stats.tiers.batch.estimatedUsd)
  t.is(figures.committed, stats.spend.committedUsd)
  t.is(figures.cap, 50)
  t.is(figures.tokensIn, stats.tokens.input.toLocaleString('en-US'))
  t.is(figures.tokensOut, stats.tokens.output.toLocaleString('en-US'))
  t.is(figures.answered, '5')
  t.is(figures.failed, '1')
  t.deepEqual(figures.errors, [`${CLAUDE}ValidationException1`])
  t.deepEqual(
    figures.failures,
    [
      {
        error: 'ValidationException',
        message: 'Malformed input request, please reformat your input and try again.',
        job: arn,
      },
    ],
    "the last failure: the emulator's message, the job of its record",
  )
  t.deepEqual(
    await page.$$eval('#errors table.record-errors tr[data-job]', (rows) =>
      rows.map((tr) => [tr.dataset.job, tr.dataset.error, tr.querySelector('[data-field="count"]').textContent]),
    ),
    [[arn, 'ValidationException', '1']],
    "without a store too, the job's failed records by error name, as the engine read its output",
  )
  t.is(figures.timelineSettled, prompts.length, 'the timeline counts every settled request')
  t.true(figures.bars >= 1)
  t.deepEqual(consoleErrors, [], 'no script error, no CSP refusal')

  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
  // A phone: one column, nothing wider than the screen.
  await page.setViewport(PHONE)
  await page
    .waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth + 1, { timeout: 5000 })
    .catch(() => {})
  const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }))
  t.true(widths.scroll <= widths.inner + 1, `no horizontal scrolling on a phone: ${JSON.stringify(widths)}`)
  const bar = await page.$eval(`#jobs tr[data-job="${arn}"] progress`, (e) => {
    const r = e.getBoundingClientRect()
    return { left: r.left, right: r.right, width: r.width, inner: window.innerWidth }
  })
  t.true(
    bar.left >= 0 && bar.right <= bar.inner && bar.width > bar.inner / 2,
    `the progress bar fits a phone: ${JSON.stringify(bar)}`,
  )
  t.is(await page.$eval('#jobs thead', (e) => getComputedStyle(e).display), 'none', 'one card per job on a phone')
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true })

  // Never a body, an answer, an API key or a credential: in the HTML, in what the page polls, in the DOM.
  const secrets = [canary, apiKey, emu.credentials.accessKeyId, emu.credentials.secretAccessKey]
  const html = await (await fetch(`${srv.url}/_bridge/`)).text()
  const polled = await (await fetch(`${srv.url}/_bridge/dashboard.json`)).text()
  const dom = await page.content()
  for (const secret of secrets) {
    t.false(html.includes(secret), `the page's HTML holds no ${secret}`)
    t.false(polled.includes(secret), `dashboard.json holds no ${secret}`)
    t.false(dom.includes(secret), `the live page holds no ${secret}`)
  }
  t.true(
    answers.some((a) => a.text.includes(canary)),
    'the canary did reach the answers',
  )
})

test('with JavaScript off, the first view shows the tables, from stats', async (t) => {
  const browser = await launch(t)
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu, { prefix: unique('dashnojs'), config: { pricing: PRICING } })
  const answers = await Promise.all([1, 2, 3].map((i) => invoke(srv.url, `no script ${i}`)))
  t.deepEqual(
    answers.map((a) => a.status),
    [200, 200, 200],
  )
  const stats = await srv.stats()
  t.is(stats.jobs[0].status, 'Completed')

  const page = await browser.newPage()
  await page.setJavaScriptEnabled(false)
  await page.setViewport(LAPTOP)
  await page.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
  t.deepEqual(await jobRows(page), {
    [stats.jobs[0].jobArn]: { ...expectedRows(stats)[stats.jobs[0].jobArn], eta: 'ended' },
  })
  t.regex(await page.$eval('#live', (e) => e.textContent), /Server view at .* \(live updates need JavaScript\)/)
  t.is(await page.$eval('#spend [data-field="saving"]', (e) => e.textContent), usd(stats.estimatedSavingUsd))
  t.is(await page.$eval('#models tr[data-model] [data-field="answered"]', (e) => e.textContent), '3')
  t.is(await page.$eval('#group .empty', (e) => e.textContent), 'No store: the jobs live in this process only.')
  t.is(await page.$eval('#timeline svg.chart', (e) => Number(e.dataset.settled)), 3)
  t.is(await page.evaluate(() => document.body.dataset.polls), undefined, 'no script ran')
})

test('the page takes the same auth rule as /_bridge/stats: with --auth, an unsigned GET gets 403', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu, { args: ['--auth', 'AKID_DASH:secret-dash'] })
  for (const path of ['/_bridge/stats', '/_bridge/', '/_bridge/dashboard.json', '/_bridge/assets/dashboard.js']) {
    const res = await fetch(`${srv.url}${path}`)
    t.is(res.status, 403, path)
    t.false((await res.text()).includes('secret-dash'))
  }
})

test('the page and its assets on a loopback serve: types, no-store, a redirect from /_bridge, 404 for other assets', async (t) => {
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu)
  const page = await fetch(`${srv.url}/_bridge/`)
  t.is(page.status, 200)
  t.is(page.headers.get('content-type'), 'text/html; charset=utf-8')
  t.is(page.headers.get('cache-control'), 'no-store')
  t.regex(await page.text(), /No batch jobs yet\./)
  const redirect = await fetch(`${srv.url}/_bridge`, { redirect: 'manual' })
  t.is(redirect.status, 308)
  t.is(redirect.headers.get('location'), '/_bridge/')
  for (const [name, type] of [
    ['dashboard.js', 'text/javascript; charset=utf-8'],
    ['view.js', 'text/javascript; charset=utf-8'],
    ['dashboard.css', 'text/css; charset=utf-8'],
  ]) {
    const res = await fetch(`${srv.url}/_bridge/assets/${name}`)
    t.is(res.status, 200, name)
    t.is(res.headers.get('content-type'), type)
  }
  for (const name of ['index.js', 'recorder.js', '..%2Fserver.js', '../server.js'])
    t.is((await fetch(`${srv.url}/_bridge/assets/${name}`)).status, 404, name)
  const post = await fetch(`${srv.url}/_bridge/`, { method: 'POST', body: '{}' })
  t.is(post.status, 405)
  t.is(post.headers.get('allow'), 'GET, HEAD')
  const polled = await (await fetch(`${srv.url}/_bridge/dashboard.json`)).json()
  t.deepEqual(Object.keys(polled).sort(), [
    'errors',
    'failures',
    'jobTimes',
    'load',
    'members',
    'now',
    'recordErrors',
    'requests',
    'startedAt',
    'stats',
  ])
  t.deepEqual(polled.members, [], 'no group: no members')
  t.deepEqual(polled.failures, [], 'nothing failed')
  t.deepEqual(polled.recordErrors, {})
  // Without a group, serve's metrics have no members gauge.
  const metrics = parsePrometheus(await (await fetch(`${srv.url}/_bridge/metrics`)).text())
  t.true(metrics.length >= 10)
  t.false(
    metrics.some((f) => f.name === 'bedrock_batch_group_members'),
    'no group: no members gauge',
  )
  t.deepEqual(polled.stats, await srv.stats())
})

test('text from callers is escaped: a model id that is HTML shows as text and runs nothing', async (t) => {
  const browser = await launch(t)
  const { emu } = await startEmu(t)
  const srv = await startServe(t, emu, { prefix: unique('dashxss') })
  const hostile = `"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`
  const res = await fetch(`${srv.url}/model/${encodeURIComponent(hostile)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(claudeBody('who am I')),
  })
  t.true(res.status >= 400, `refused: ${res.status}`)
  const page = await browser.newPage()
  await page.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
  await page.waitForFunction(() => Number(document.body.dataset.polls) >= 1, { timeout: 15_000 })
  t.is(await page.evaluate(() => window.__xss), undefined, 'nothing ran')
  t.is(await page.evaluate(() => document.querySelectorAll('main img, main script').length), 0)
  const shown = await page.evaluate(() => document.querySelector('#errors').textContent)
  t.true(shown.includes(hostile), `the model id is shown as text: ${shown}`)
})

pgTest(
  'a PostgreSQL group of two serve processes: each page lists both processes (host, pid) and which one leads, says whether its own process leads, and names the store without its password',
  async (t) => {
    const browser = await launch(t)
    const { emu } = await startEmu(t)
    const group = unique('dash-group')
    const args = ['--store', PG_URL, '--group', group]
    const prefix = unique('dashgrp')
    const a = await startServe(t, emu, { prefix, args })
    const b = await startServe(t, emu, { prefix, args })
    const pids = [a.child.pid, b.child.pid]
    const [sa, sb] = await waitFor(
      'one leader',
      async () => {
        const both = await Promise.all([a.stats(), b.stats()])
        return both[0].leader !== both[1].leader && both
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    )
    const leaderPid = sa.leader ? a.child.pid : b.child.pid
    mkdirSync(ARTIFACTS, { recursive: true })
    const password = decodeURIComponent(new URL(PG_URL).password)
    for (const [srv, stats] of [
      [a, sa],
      [b, sb],
    ]) {
      // dashboard.json: both serve processes, one leading (the one whose stats say so).
      const polled = await waitFor(
        "both processes in this serve's dashboard.json, one leading",
        async () => {
          const snap = await (await fetch(`${srv.url}/_bridge/dashboard.json`)).json()
          const m = snap.members ?? []
          return m.length === 2 && m.filter((x) => x.leads).length === 1 && snap
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      )
      t.deepEqual(polled.members.map((m) => m.pid).sort(), [...pids].sort(), 'the members are the two serve processes')
      t.is(polled.members.find((m) => m.leads).pid, leaderPid, 'the leader is the serve whose stats say it leads')
      t.deepEqual(
        polled.members.filter((m) => m.self).map((m) => m.pid),
        [srv.child.pid],
        'this process is marked as itself',
      )
      for (const m of polled.members) t.true(m.since > Date.now() - 600_000 && m.since <= polled.now, 'since: epoch ms')
      // Its metrics: the group's members by role, as the dashboard reads them (one leads, one is a member).
      const scraped = await waitFor(
        "both processes in this serve's metrics",
        async () => {
          const text = await (await fetch(`${srv.url}/_bridge/metrics`)).text()
          const family = parsePrometheus(text).find((f) => f.name === 'bedrock_batch_group_members')
          const total = family?.metrics.reduce((n, m) => n + Number(m.value), 0)
          return total === 2 && { family, text }
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      )
      t.is(scraped.family.type, 'GAUGE')
      t.regex(scraped.family.help, /group.*leader.*member/)
      t.deepEqual(
        scraped.family.metrics.map((m) => [m.labels, m.value]),
        [
          [{ role: 'leader' }, '1'],
          [{ role: 'member' }, '1'],
        ],
      )
      t.is(
        parsePrometheus(scraped.text).find((f) => f.name === 'bedrock_batch_leader')?.metrics[0].value,
        stats.leader ? '1' : '0',
        "beside this process's own leader flag",
      )
      if (password) t.false(scraped.text.includes(password), 'no password in the metrics')
      // The server-rendered view (no script) lists them too.
      const html = await (await fetch(`${srv.url}/_bridge/`)).text()
      for (const pid of pids) t.regex(html, new RegExp(`<td class="n" data-label="PID" data-field="pid">${pid}\\b`))

      const page = await browser.newPage()
      await page.setViewport(LAPTOP)
      await page.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
      await page.waitForFunction(() => Number(document.body.dataset.polls) >= 1, { timeout: 15_000 })
      const shown = await page.evaluate(() => ({
        leader: document.querySelector('#group [data-field="leader"]')?.dataset.leader,
        text: document.querySelector('#group [data-field="leader"]')?.textContent,
        store: document.querySelector('#group [data-field="store"]')?.textContent,
        location: document.querySelector('#group code')?.textContent,
        members: [...document.querySelectorAll('#group tr[data-member]')].map((tr) => ({
          pid: Number.parseInt(tr.querySelector('[data-field="pid"]').textContent, 10),
          leads: tr.dataset.leads,
          role: tr.querySelector('[data-field="role"]').textContent,
          self: tr.dataset.self === 'true',
        })),
      }))
      t.is(shown.leader, String(stats.leader))
      t.is(shown.text, stats.leader ? 'leads the group' : 'a member (another process leads)')
      t.is(shown.store, 'PostgreSQL group')
      t.is(shown.location, stats.store.location)
      t.deepEqual(shown.members.map((m) => m.pid).sort(), [...pids].sort(), 'the page lists both serve processes')
      t.deepEqual(
        shown.members.filter((m) => m.leads === 'true').map((m) => [m.pid, m.role]),
        [[leaderPid, 'leads the group']],
        'exactly one leads: the leader',
      )
      t.deepEqual(
        shown.members.filter((m) => m.self).map((m) => m.pid),
        [srv.child.pid],
      )
      if (password) t.false((await page.content()).includes(password), 'no password on the page')
      await page.screenshot({
        path: join(ARTIFACTS, `dashboard-group-${stats.leader ? 'leader' : 'member'}.png`),
        fullPage: true,
      })
      await page.close()
    }
  },
)

test('serve with a journal: the failed records of each ended job by error name on the page, and a page per job with the commands that show it', async (t) => {
  const browser = await launch(t)
  const { emu } = await startEmu(t, { minRecords: 1 })
  const prefix = unique('dashrec')
  const dir = tempDir(t)
  const journal = join(dir, 'serve.db')
  const srv = await startServe(t, emu, {
    prefix,
    dir,
    batch: { minBatchSize: 1, maxBatchSize: 4 },
    args: ['--journal', journal],
  })
  const answers = await Promise.all(
    [`ok one ${prefix}`, `fails [[error:400]] ${prefix}`, `fails too [[error:400]] ${prefix}`, `ok two ${prefix}`].map(
      (p) => invoke(srv.url, p),
    ),
  )
  t.deepEqual(
    answers.map((a) => a.status),
    [200, 400, 400, 200],
  )
  const stats = await srv.stats()
  t.is(stats.jobs.length, 1)
  const job = stats.jobs[0]
  t.like(job, { status: 'Completed', errorRecordCount: 2 })
  // Counted from the journal's stored answers once the job ended.
  const polled = await waitFor(
    'the failed records of the job and its creation time in dashboard.json',
    async () => {
      const snap = await (await fetch(`${srv.url}/_bridge/dashboard.json`)).json()
      return snap.recordErrors?.[job.jobArn] && snap.jobTimes[job.jobArn]?.createdAt !== undefined && snap
    },
    { timeoutMs: 15_000, intervalMs: 100 },
  )
  t.deepEqual(polled.recordErrors, { [job.jobArn]: { ValidationException: 2 } })
  t.deepEqual(polled.members, [], 'a journal: no group')
  // When the job was created, as the journal keeps it (read beside serve, which holds its lock).
  const stored = await new NativeStoreReader({ journal: { path: journal } }).jobs()
  t.falsy(stored.error)
  t.is(polled.jobTimes[job.jobArn].createdAt, stored.jobs.find((j) => j.jobArn === job.jobArn).createdAt)
  t.true(polled.jobTimes[job.jobArn].createdAt <= polled.jobTimes[job.jobArn].firstSeen + 1000)

  // With JavaScript off: the server-rendered tables hold them, and the job's name links to its page.
  const page = await browser.newPage()
  await page.setJavaScriptEnabled(false)
  await page.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
  const shown = await page.evaluate(() => ({
    failed: [...document.querySelectorAll('#errors tr[data-error]')].map((tr) => [
      tr.dataset.job,
      tr.dataset.error,
      tr.querySelector('[data-field="count"]').textContent,
    ]),
    link: document.querySelector('#jobs tr[data-job] a.name')?.getAttribute('href'),
    started: document.querySelector('#jobs tr[data-job] [data-field="started"]')?.textContent,
  }))
  t.is(shown.started, `${new Date(polled.jobTimes[job.jobArn].createdAt).toISOString().slice(11, 19)} UTC`)
  t.deepEqual(shown.failed, [[job.jobArn, 'ValidationException', '2']])
  const id = job.jobArn.split('/').pop()
  t.is(shown.link, `jobs/${id}`)
  const res = await page.goto(`${srv.url}/_bridge/${shown.link}`, { waitUntil: 'load' })
  t.is(res.status(), 200)
  const jobPage = await page.evaluate(() => ({
    arn: document.querySelector('[data-field="arn"]').textContent,
    processed: document.querySelector('[data-field="processed"]').textContent,
    errors: [...document.querySelectorAll('#errors tr[data-error]')].map((tr) => tr.textContent),
    commands: [...document.querySelectorAll('#commands code')].map((c) => c.textContent),
  }))
  t.is(jobPage.arn, job.jobArn)
  t.is(jobPage.processed, '4 / 4')
  t.deepEqual(jobPage.errors, ['ValidationException2'])
  t.deepEqual(jobPage.commands, [
    `bedrock-batch-bridge jobs show ${job.jobArn} --region ${emu.region}`,
    `bedrock-batch-bridge jobs results ${job.jobArn} --region ${emu.region} --out results.jsonl`,
  ])
  t.is((await fetch(`${srv.url}/_bridge/jobs/abcdefghijkl`)).status, 404)
})
