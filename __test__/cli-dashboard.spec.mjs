// `bedrock-batch-bridge dashboard` (node cli.js dashboard, as its users run it) reading a
// PostgreSQL group, or a journal, while a client that owns it runs jobs on the emulator: the client
// keeps leading its group (or its journal's lock), and the page (server-rendered tables, then live
// in a real chromium), dashboard.json, the job pages and the metrics show the store's jobs with the
// counts the client reports.

import { spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import parsePrometheus from 'parse-prometheus-text-format'

import { launch } from './browser.mjs'
import {
  CLAUDE,
  CLI,
  childEnv,
  claudeBody,
  claudeCommand,
  makeClient,
  PG_URL,
  pgTest,
  settle,
  signedGet,
  startDashboard,
  startEmu,
  startServe,
  tempDir,
  unique,
  waitFor,
} from './helpers.mjs'

const { NativeStoreReader } = createRequire(import.meta.url)('../binding.js')
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))
/** The emulator's message of a ValidationException (as Bedrock words it). */
const MALFORMED = 'Malformed input request, please reformat your input and try again.'

const getJson = async (url) => {
  const res = await fetch(url)
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`)
  return res.json()
}

/** What the server-rendered page shows of each job (JavaScript off), by ARN. */
function jobRows(page) {
  return page.evaluate(() => {
    const out = {}
    for (const tr of document.querySelectorAll('#jobs tr[data-job]')) {
      const field = (name) => tr.querySelector(`[data-field="${name}"]`)?.textContent.trim()
      out[tr.dataset.job] = {
        name: tr.querySelector('.name')?.textContent,
        link: tr.querySelector('a.name')?.getAttribute('href'),
        status: field('status'),
        processed: field('processed'),
        total: field('total'),
        success: field('success'),
        error: field('error'),
      }
    }
    return out
  })
}

/** The page's row of a job of `stats()`: the store's counts are the client's. */
function expectedRow(j) {
  const n = (v) => v.toLocaleString('en-US')
  return {
    name: j.jobName,
    link: `jobs/${j.jobArn.split('/').pop()}`,
    status: j.status,
    processed: n(j.successRecordCount + j.errorRecordCount),
    total: n(j.totalRecordCount),
    success: n(j.successRecordCount),
    error: n(j.errorRecordCount),
  }
}

/** The families of a metrics text by name, as the npm parser reads them. */
function families(text) {
  return new Map(parsePrometheus(text).map((f) => [f.name, f]))
}

/**
 * Sends `prompts` through `client` as jobs of `perJob` records: the first job runs normally with
 * one failing record, the second holds InProgress (`[[job:slow]]`) until the emulator lets it go.
 */
function sendJobs(client, prefix) {
  const prompts = [
    `first ${prefix}`,
    `second [[error:400]] ${prefix}`,
    `third ${prefix}`,
    `fourth ${prefix}`,
    `held [[job:slow]] ${prefix}`,
    `held two ${prefix}`,
    `held three ${prefix}`,
    `held four ${prefix}`,
  ]
  return Promise.all(prompts.map((p) => settle(client.send(claudeCommand(p)))))
}

pgTest.serial(
  'dashboard --store on a group beside a running client: the client keeps leading; page, job pages, dashboard.json and metrics show its jobs',
  async (t) => {
    const browser = await launch(t)
    const { emu } = await startEmu(t, { minRecords: 1, slowJobSeconds: 8 })
    const group = unique('dashcmd-group')
    const prefix = unique('dashcmd')
    const { client } = makeClient(t, emu, {
      maxCostUsd: 50,
      store: { url: PG_URL, group, electionInterval: 0.2 },
      batch: { minBatchSize: 1, maxBatchSize: 4, batchTimeout: 0.2, jobNamePrefix: prefix },
    })
    // jobs() opens the store (the engine starts at its first use).
    await client.jobs()
    await waitFor('the client to lead its group', () => client.stats().leader === true, { timeoutMs: 30_000 })
    const sent = sendJobs(client, prefix)
    await waitFor('two jobs, one held InProgress', () => {
      const jobs = client.stats().jobs
      return jobs.length === 2 && jobs.some((j) => j.status === 'InProgress' && j.processedRecordCount > 0)
    })

    const dash = await startDashboard(t, ['--store', PG_URL, '--group', group, '--interval', '0.2'])
    t.regex(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/_bridge\/$/, 'on loopback by default')
    // The dashboard is no member of the group: the client keeps leading it, alone.
    const live = await waitFor(
      'dashboard.json to show the first job Completed and the second InProgress',
      async () => {
        const snap = await getJson(`${dash.url}dashboard.json`)
        const statuses = snap.stats.jobs.map((j) => j.status).sort()
        // The held job's counts move in the store while it runs (half its records answered).
        const running = snap.stats.jobs.find((j) => j.status === 'InProgress')
        return (
          statuses.join() === 'Completed,InProgress' &&
          Object.keys(snap.recordErrors).length === 1 &&
          running.processedRecordCount > 0 &&
          snap
        )
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    )
    t.is(client.stats().leader, true, 'the client still leads its group')
    t.is(live.source, 'store')
    t.is(live.store.kind, 'postgres')
    t.true(live.store.location.endsWith(`#${group}`))
    t.deepEqual(
      (live.members ?? []).map((m) => ({ pid: m.pid, leads: m.leads })),
      [{ pid: process.pid, leads: true }],
      'one member, this process (the client), leading',
    )
    t.true(
      live.members[0].since <= live.now && live.members[0].since > live.now - 120_000,
      'a member since the test began',
    )
    const byArn = new Map(client.stats().jobs.map((j) => [j.jobArn, j]))
    const done = live.stats.jobs.find((j) => j.status === 'Completed')
    const held = live.stats.jobs.find((j) => j.status === 'InProgress')
    t.like(done, {
      jobName: byArn.get(done.jobArn).jobName,
      modelId: CLAUDE,
      totalRecordCount: 4,
      successRecordCount: 3,
      errorRecordCount: 1,
      processedRecordCount: 4,
    })
    t.true(done.jobName.startsWith(prefix))
    t.deepEqual(live.recordErrors, { [done.jobArn]: { ValidationException: 1 } })
    // The last failed records, with the message the store keeps (the emulator's, as Bedrock words it).
    t.is(live.failures.length, 1)
    t.like(live.failures[0], { model: CLAUDE, error: 'ValidationException', message: MALFORMED, jobArn: done.jobArn })
    t.is(typeof live.failures[0].recordId, 'string')
    t.is(live.failures[0].at, undefined, 'a store keeps no time per answer')
    t.true(Math.abs(live.jobTimes[done.jobArn].firstSeen - Date.now()) < 60_000, 'created now (epoch ms)')

    // The server-rendered page (JavaScript off): the tables hold the client's counts.
    const still = await browser.newPage()
    await still.setJavaScriptEnabled(false)
    await still.goto(dash.url, { waitUntil: 'load' })
    const rows = await jobRows(still)
    t.deepEqual(rows[done.jobArn], expectedRow(byArn.get(done.jobArn)))
    t.is(rows[held.jobArn].status, 'InProgress')
    t.is(rows[held.jobArn].total, '4')
    t.like(
      held,
      { processedRecordCount: 2, successRecordCount: 2, totalRecordCount: 4 },
      'half answered, while InProgress',
    )
    t.is(rows[held.jobArn].processed, '2', 'the page shows the running job half done')
    const page = await still.evaluate(() => ({
      model: document.querySelector(`#models tr[data-model] [data-field="jobs"]`)?.textContent,
      modelTotal: document.querySelector(`#models tr[data-model] [data-field="total"]`)?.textContent,
      modelErrors: document.querySelector(`#models tr[data-model] [data-field="error"]`)?.textContent,
      unseen: document.querySelector('[data-field="unseen"]')?.textContent,
      leader: document.querySelector('#group tr[data-leads="true"] [data-field="pid"]')?.textContent,
      failed: [...document.querySelectorAll('#errors tr[data-error]')].map((tr) => [
        tr.dataset.error,
        tr.querySelector('[data-field="count"]').textContent,
      ]),
      last: [...document.querySelectorAll('#errors tr[data-failure]')].map((tr) => [
        tr.querySelector('[data-field="error"]').textContent,
        tr.querySelector('[data-field="job"] a')?.getAttribute('href'),
        tr.querySelector('[data-field="record"]').textContent,
        tr.querySelector('[data-field="message"]').textContent,
      ]),
      html: document.documentElement.outerHTML,
      live: document.querySelector('#live').textContent,
    }))
    t.is(page.model, '1 / 2', 'one of two jobs running')
    t.is(page.modelTotal, '8')
    t.is(page.modelErrors, '1')
    t.regex(page.unseen, /cannot see them/)
    t.is(page.leader, String(process.pid))
    t.deepEqual(page.failed, [['ValidationException', '1']])
    t.deepEqual(page.last, [
      ['ValidationException', `jobs/${done.jobArn.split('/').pop()}`, live.failures[0].recordId, MALFORMED],
    ])
    t.false(page.html.includes('second [[error:400]]'), 'never the failed request body')
    t.regex(page.live, /live updates need JavaScript/)

    // A job's page: its figures, failed records by error, the commands (the URL as a variable).
    const jobPage = await still.goto(`${dash.url}${rows[done.jobArn].link}`, { waitUntil: 'load' })
    t.is(jobPage.status(), 200)
    const shown = await still.evaluate(() => ({
      arn: document.querySelector('[data-field="arn"]').textContent,
      processed: document.querySelector('[data-field="processed"]').textContent,
      errors: [...document.querySelectorAll('#errors tr[data-error]')].map((tr) => tr.textContent),
      last: [...document.querySelectorAll('#errors tr[data-failure] [data-field="message"]')].map(
        (td) => td.textContent,
      ),
      commands: [...document.querySelectorAll('#commands code')].map((c) => c.textContent),
    }))
    t.is(shown.arn, done.jobArn)
    t.deepEqual(shown.last, [MALFORMED], "the job's page: its last failed record with its message")
    t.is(shown.processed, '4 / 4')
    t.deepEqual(shown.errors, ['ValidationException1'])
    t.deepEqual(shown.commands, [
      `bedrock-batch-bridge jobs show ${done.jobArn} --store "$BEDROCK_BATCH_STORE_URL" --group ${group}`,
      `bedrock-batch-bridge jobs results ${done.jobArn} --store "$BEDROCK_BATCH_STORE_URL" --group ${group} --out results.jsonl`,
    ])
    mkdirSync(ARTIFACTS, { recursive: true })
    await still.screenshot({ path: join(ARTIFACTS, 'dashboard-store-job.png'), fullPage: true })
    t.is((await fetch(`${dash.url}jobs/abcdefghijkl`)).status, 404)
    t.is((await fetch(`${dash.url}jobs/..%2F..%2Fetc`)).status, 404)

    // Live, in a browser: the held job completes and the page follows without a reload.
    const browserPage = await browser.newPage()
    const consoleErrors = []
    browserPage.on('pageerror', (err) => consoleErrors.push(String(err)))
    browserPage.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
    await browserPage.goto(dash.url, { waitUntil: 'load' })
    await browserPage.evaluate(() => {
      window.__notReloaded = true
    })
    const outcomes = await sent
    t.deepEqual(
      outcomes.map((o) => o.ok),
      [true, false, true, true, true, true, true, true],
    )
    await browserPage.waitForFunction(
      (arn) => document.querySelector(`#jobs tr[data-job="${arn}"]`)?.dataset.status === 'Completed',
      { timeout: 30_000, polling: 100 },
      held.jobArn,
    )
    t.true(await browserPage.evaluate(() => window.__notReloaded === true), 'followed without a reload')
    t.true(Number(await browserPage.evaluate(() => document.body.dataset.polls)) >= 1)
    const final = client.stats().jobs.find((j) => j.jobArn === held.jobArn)
    await browserPage.waitForFunction(
      (arn, n) =>
        document.querySelector(`#jobs tr[data-job="${arn}"] [data-field="success"]`)?.textContent === String(n),
      { timeout: 10_000, polling: 100 },
      held.jobArn,
      final.successRecordCount,
    )
    t.deepEqual((await jobRows(browserPage))[held.jobArn], expectedRow(final))
    t.deepEqual(consoleErrors, [], 'no script error, no CSP refusal')
    await browserPage.setViewport({ width: 1280, height: 900 })
    await browserPage.screenshot({ path: join(ARTIFACTS, 'dashboard-store.png'), fullPage: true })

    // Metrics: the job and record gauges of the group, and its members.
    const res = await fetch(`${dash.url}metrics`)
    t.is(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
    const m = families(await res.text())
    t.deepEqual(
      m.get('bedrock_batch_jobs').metrics.map((s) => [s.labels, s.value]),
      [[{ model: CLAUDE, status: 'Completed' }, '2']],
    )
    const records = Object.fromEntries(
      m.get('bedrock_batch_job_records').metrics.map((s) => [s.labels.outcome, Number(s.value)]),
    )
    t.deepEqual(records, { success: 7, error: 1, pending: 0 })
    t.deepEqual(
      m.get('bedrock_batch_group_members')?.metrics.map((s) => [s.labels.role, s.value]),
      [
        ['leader', '1'],
        ['member', '0'],
      ],
    )
    t.false(m.has('bedrock_batch_requests'), 'no request figures: those live in the processes')
    // The committed spend the group keeps (its jobs' upper-bound cost under the cap), as the store tells it.
    const { usd: committed, error } = await new NativeStoreReader({ store: { url: PG_URL, group } }).committedSpend()
    t.falsy(error)
    t.true(committed > 0, `the group committed its two jobs' cost: ${committed}`)
    t.is(Number(m.get('bedrock_batch_committed_spend_usd').metrics[0].value), committed)
    await still.goto(dash.url, { waitUntil: 'load' })
    t.is(await still.$eval('#spend [data-field="committed"]', (e) => Number(e.dataset.usd)), committed)

    t.is(client.stats().leader, true, 'the client leads its group to the end')
    const password = decodeURIComponent(new URL(PG_URL).password)
    if (password) {
      for (const path of ['', 'dashboard.json', 'metrics', rows[done.jobArn].link])
        t.false((await (await fetch(`${dash.url}${path}`)).text()).includes(password), `no password at ${path}`)
      t.false(dash.stderr().includes(password), 'no password in its log')
    }
  },
)

/** A raw InvokeModel call through serve (as an SDK sends it): `{ status }`. */
async function invoke(url, prompt) {
  const res = await fetch(`${url}/model/${encodeURIComponent(CLAUDE)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(claudeBody(prompt)),
  })
  await res.arrayBuffer()
  return { status: res.status }
}

pgTest(
  'dashboard --store on a group of two serve processes: both members (their pids) and the one leader, in dashboard.json, the metrics and a browser; a running job moves on the page',
  async (t) => {
    const browser = await launch(t)
    const { emu } = await startEmu(t, { minRecords: 1, slowJobSeconds: 8 })
    const group = unique('dash2-group')
    const prefix = unique('dash2')
    const args = ['--store', PG_URL, '--group', group]
    const batch = { minBatchSize: 1, maxBatchSize: 4, batchTimeout: 0.3 }
    const a = await startServe(t, emu, { prefix, args, batch })
    const b = await startServe(t, emu, { prefix, args, batch })
    const [sa] = await waitFor(
      'one of the two serve processes to lead',
      async () => {
        const both = await Promise.all([a.stats(), b.stats()])
        return both[0].leader !== both[1].leader && both
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    )
    const pids = [a.child.pid, b.child.pid].sort()
    const leaderPid = sa.leader ? a.child.pid : b.child.pid
    t.notDeepEqual(pids[0], pids[1])

    const dash = await startDashboard(t, ['--store', PG_URL, '--group', group, '--interval', '0.2'])
    const members = await waitFor(
      'two members, one leading, in dashboard.json',
      async () => {
        const m = (await getJson(`${dash.url}dashboard.json`)).members ?? []
        return m.length === 2 && m.filter((x) => x.leads).length === 1 && m
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    )
    t.deepEqual(members.map((m) => m.pid).sort(), pids, 'the members are the two serve processes')
    t.is(new Set(members.map((m) => m.pid)).size, 2, 'distinct pids')
    t.deepEqual(
      members.filter((m) => m.leads).map((m) => m.pid),
      [leaderPid],
      'exactly one leads: the serve whose stats say so',
    )

    // In a browser: both rows, one leading; then a job held InProgress, half answered, moves on to Completed.
    const page = await browser.newPage()
    const consoleErrors = []
    page.on('pageerror', (err) => consoleErrors.push(String(err)))
    await page.setViewport({ width: 1280, height: 900 })
    await page.goto(dash.url, { waitUntil: 'load' })
    await page.evaluate(() => {
      window.__notReloaded = true
    })
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('#group tr[data-member]')].map((tr) => ({
        pid: Number(tr.querySelector('[data-field="pid"]').textContent),
        leads: tr.dataset.leads === 'true',
        role: tr.querySelector('[data-field="role"]').textContent,
      })),
    )
    t.deepEqual(rows.map((r) => r.pid).sort(), pids, 'the page lists both processes')
    t.deepEqual(
      rows.filter((r) => r.leads).map((r) => [r.pid, r.role]),
      [[leaderPid, 'leads the group']],
    )

    const calls = Promise.all(
      [`held [[job:slow]] ${prefix}`, `two ${prefix}`, `three ${prefix}`, `four ${prefix}`].map((p) =>
        invoke(a.url, p),
      ),
    )
    const running = await waitFor(
      'the job InProgress with half its records answered, in dashboard.json',
      async () => {
        const jobs = (await getJson(`${dash.url}dashboard.json`)).stats.jobs
        return jobs.length === 1 && jobs[0].status === 'InProgress' && jobs[0].processedRecordCount > 0 && jobs[0]
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    )
    t.like(running, { processedRecordCount: 2, successRecordCount: 2, totalRecordCount: 4 })
    await page.waitForFunction(
      (arn) => {
        const tr = document.querySelector(`#jobs tr[data-job="${arn}"]`)
        return tr?.dataset.status === 'InProgress' && tr.querySelector('[data-field="processed"]')?.textContent === '2'
      },
      { timeout: 15_000, polling: 100 },
      running.jobArn,
    )
    t.is(
      await page.$eval(`#jobs tr[data-job="${running.jobArn}"] progress`, (e) => Number(e.getAttribute('value'))),
      2,
      'the bar is half full while the job runs',
    )
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-store-group.png'), fullPage: true })
    t.deepEqual(
      (await calls).map((c) => c.status),
      [200, 200, 200, 200],
    )
    await page.waitForFunction(
      (arn) => {
        const tr = document.querySelector(`#jobs tr[data-job="${arn}"]`)
        return tr?.dataset.status === 'Completed' && tr.querySelector('[data-field="processed"]')?.textContent === '4'
      },
      { timeout: 30_000, polling: 100 },
      running.jobArn,
    )
    t.true(await page.evaluate(() => window.__notReloaded === true), 'followed without a reload')
    t.deepEqual(consoleErrors, [])

    const m = families(await (await fetch(`${dash.url}metrics`)).text())
    t.deepEqual(
      m.get('bedrock_batch_group_members')?.metrics.map((s) => [s.labels.role, s.value]),
      [
        ['leader', '1'],
        ['member', '1'],
      ],
    )
  },
)

pgTest(
  'dashboard: beyond loopback it needs --auth or --api-key; with an API key, a request without it gets 403',
  async (t) => {
    const group = unique('dashcmd-auth')
    const open = spawn(process.execPath, [CLI, 'dashboard', '--store', PG_URL, '--group', group, '--host', '0.0.0.0'], {
      env: childEnv(),
    })
    let err = ''
    open.stderr.setEncoding('utf8').on('data', (d) => {
      err += d
    })
    const code = await new Promise((resolve) => open.on('close', resolve))
    t.is(code, 2)
    t.regex(err, /beyond this machine: give --auth .* or --api-key/)

    const key = `dash-key-${unique('k')}`
    const dash = await startDashboard(t, ['--store', PG_URL, '--group', group, '--api-key', key])
    for (const path of ['', 'dashboard.json', 'metrics', 'assets/view.js']) {
      const refused = await fetch(`${dash.url}${path}`)
      t.is(refused.status, 403, path)
      t.false((await refused.text()).includes(key))
      t.is((await fetch(`${dash.url}${path}`, { headers: { authorization: `Bearer ${key}` } })).status, 200, path)
      t.is((await fetch(`${dash.url}${path}`, { headers: { 'x-api-key': key } })).status, 200, path)
      t.is((await fetch(`${dash.url}${path}`, { headers: { 'x-api-key': 'wrong' } })).status, 403, path)
    }
  },
)

pgTest('dashboard --auth: only SigV4-signed requests with those credentials read it', async (t) => {
  const key = { accessKeyId: 'AKID_DASHCMD', secretAccessKey: `secret-${unique('s')}` }
  const dash = await startDashboard(t, [
    '--store',
    PG_URL,
    '--group',
    unique('dashcmd-sig'),
    '--auth',
    `${key.accessKeyId}:${key.secretAccessKey}`,
    '--region',
    'us-west-2',
  ])
  for (const path of ['', 'dashboard.json', 'metrics']) {
    const unsigned = await fetch(`${dash.url}${path}`)
    t.is(unsigned.status, 403, path)
    t.false((await unsigned.text()).includes(key.secretAccessKey))
    const ok = await signedGet(`${dash.url}${path}`, 'us-west-2', key)
    t.is(ok.status, 200, `${path}: ${await ok.clone().text()}`)
    const other = { accessKeyId: key.accessKeyId, secretAccessKey: 'not-the-secret' }
    t.is((await signedGet(`${dash.url}${path}`, 'us-west-2', other)).status, 403, path)
  }
})

test('dashboard of a store that does not answer: the page says it was not read, and retries; no password shown', async (t) => {
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
  const secret = `pw-${unique('s')}`
  const dash = await startDashboard(t, [
    '--store',
    `postgres://bbb:${secret}@127.0.0.1:${port}/bbb?sslmode=disable`,
    '--interval',
    '0.2',
  ])
  const html = await (await fetch(dash.url)).text()
  t.regex(html, /<span id="live" role="status">Store not read at [^<]*StoreUnavailableException[^<]*: retrying<\/span>/)
  t.true(html.includes(`127.0.0.1:${port}`), 'it names host and port')
  t.regex(html, /No batch jobs yet\./)
  const snap = await getJson(`${dash.url}dashboard.json`)
  t.regex(snap.readError, /^StoreUnavailableException: /)
  for (const text of [html, JSON.stringify(snap), dash.stderr()]) t.false(text.includes(secret), 'no password')
})

test('dashboard without a store is a usage error naming the options', async (t) => {
  const child = spawn(process.execPath, [CLI, 'dashboard'], { env: childEnv() })
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (d) => {
    err += d
  })
  t.is(await new Promise((resolve) => child.on('close', resolve)), 2)
  t.regex(err, /--journal FILE, or --store postgres:/)
})

test('dashboard --journal beside its running client: the client keeps its lock and goes on; page and dashboard.json show the journal jobs; jobs watch --journal follows them', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1, slowJobSeconds: 6 })
  const prefix = unique('dashjrnl')
  const path = join(tempDir(t), 'journal.db')
  const journalOptions = {
    maxCostUsd: 50,
    journal: { path },
    batch: { minBatchSize: 1, maxBatchSize: 4, batchTimeout: 0.2, jobNamePrefix: prefix },
  }
  const { client } = makeClient(t, emu, journalOptions)
  const sent = sendJobs(client, prefix)
  await waitFor('two jobs, one held InProgress', () => {
    const jobs = client.stats().jobs
    return jobs.length === 2 && jobs.some((j) => j.status === 'InProgress' && j.processedRecordCount > 0)
  })

  const dash = await startDashboard(t, ['--journal', path, '--interval', '0.2'])
  const live = await waitFor(
    'dashboard.json to show the first job Completed and the second InProgress',
    async () => {
      const snap = await getJson(`${dash.url}dashboard.json`)
      const statuses = snap.stats.jobs.map((j) => j.status).sort()
      return statuses.join() === 'Completed,InProgress' && Object.keys(snap.recordErrors).length === 1 && snap
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  )
  t.deepEqual(live.store, { kind: 'sqlite', location: path })
  t.deepEqual(live.members, [], 'a journal has no group')
  t.is(live.spend.committedUsd, client.stats().spend.committedUsd, "the journal's committed spend is its client's")
  t.true(live.spend.committedUsd > 0)
  const done = live.stats.jobs.find((j) => j.status === 'Completed')
  t.deepEqual(live.recordErrors, { [done.jobArn]: { ValidationException: 1 } })
  const byArn = new Map(client.stats().jobs.map((j) => [j.jobArn, j]))
  t.like(done, {
    jobName: byArn.get(done.jobArn).jobName,
    totalRecordCount: 4,
    successRecordCount: 3,
    errorRecordCount: 1,
  })

  // The owner kept its lock while the dashboard reads: a second client is refused.
  t.throws(() => makeClient(t, emu, journalOptions), { name: 'JournalLockedException' })

  // The server-rendered page: the journal's jobs, its owner's note.
  const html = await (await fetch(dash.url)).text()
  t.true(html.includes(`data-job="${done.jobArn}"`))
  t.regex(html, /<dd data-field="store">journal \(SQLite\)<\/dd>/)
  t.regex(html, /A journal has one owner, the process that holds its lock/)

  // The owner goes on: the held job ends, every call settles, and a new call is answered.
  const outcomes = await sent
  t.deepEqual(
    outcomes.map((o) => o.ok),
    [true, false, true, true, true, true, true, true],
  )
  t.truthy((await client.send(claudeCommand(`after the read ${prefix}`))).body)
  await waitFor(
    'dashboard.json to show three jobs Completed',
    async () =>
      (await getJson(`${dash.url}dashboard.json`)).stats.jobs.filter((j) => j.status === 'Completed').length === 3,
    { timeoutMs: 30_000, intervalMs: 100 },
  )

  // jobs watch --journal, piped: the journal's jobs, ended; it exits by itself.
  const watch = spawn(
    process.execPath,
    [CLI, 'jobs', 'watch', '--journal', path, '--interval', '0.1', '--until-done'],
    {
      env: childEnv(),
    },
  )
  let out = ''
  watch.stdout.setEncoding('utf8').on('data', (d) => {
    out += d
  })
  t.teardown(() => watch.exitCode === null && watch.kill('SIGKILL'))
  t.is(await new Promise((resolve) => watch.on('close', resolve)), 0)
  for (const j of client.stats().jobs)
    t.regex(
      out,
      new RegExp(
        `${j.jobName} +Completed .*${j.totalRecordCount}/${j.totalRecordCount} {2}ok ${j.successRecordCount} {2}err ${j.errorRecordCount}`,
      ),
    )
})
