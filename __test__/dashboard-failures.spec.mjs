// The last failures on serve's dashboard (issue 22's "errors: the last failures with their AWS
// error name and message, never a request body"): the door's bounded ring of failed requests
// (lib/failures.js), what the page renders of it (server-rendered first view and live), and, with a
// canary in the bodies of failing requests, that the messages reach the page while the bodies reach
// neither the page, nor dashboard.json, nor the metrics.

import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import test from 'ava'
import parsePrometheus from 'parse-prometheus-text-format'

import { launch } from './browser.mjs'
import {
  CLAUDE,
  claudeBody,
  claudeCommand,
  makeClient,
  settle,
  startEmu,
  startServe,
  unique,
  waitFor,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const { RecentFailures, oneLine } = require('../lib/failures.js')
const view = require('../lib/dashboard/view.js')

/** The emulator's message of a ValidationException (as Bedrock words it). */
const MALFORMED = 'Malformed input request, please reformat your input and try again.'

// ---------------------------------------------------------------------------
// The ring and its lines

test('the ring keeps the last 50 failures, newest first, each with its model, operation, name, message and job', (t) => {
  const ring = new RecentFailures()
  const labels = (tag) => ({ model: `model-${tag}`, operation: tag % 2 ? 'Converse' : 'InvokeModel' })
  for (let i = 0; i < 60; i++) {
    const err = Object.assign(new Error(`failure ${i}`), { name: 'ThrottlingException' })
    if (i % 3 === 0) err.jobArn = `arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job${i}`
    ring.add(i, err, 1_000_000 + i)
  }
  const list = ring.list(labels)
  t.is(ring.size, 50)
  t.is(list.length, 50)
  t.deepEqual(
    list.map((f) => f.message),
    Array.from({ length: 50 }, (_, k) => `failure ${59 - k}`),
    'the newest first; the ten oldest gone',
  )
  t.deepEqual(list[0], {
    at: 1_000_059,
    model: 'model-59',
    operation: 'Converse',
    error: 'ThrottlingException',
    message: 'failure 59',
  })
  t.is(list[2].jobArn, 'arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job57')
  t.is(list.filter((f) => f.jobArn).length, 16, 'a job ARN only where the exception carried one')
  // Before it is full, in order too.
  const few = new RecentFailures()
  few.add(0, { name: 'A', message: 'a' }, 1)
  few.add(1, { name: 'B', message: 'b' }, 2)
  t.deepEqual(
    few.list(labels).map((f) => f.error),
    ['B', 'A'],
  )
  t.deepEqual(new RecentFailures().list(labels), [])
})

test('a message is one line of at most 300 characters: control characters, line breaks and bidirectional controls go; a longer one is cut with an ellipsis', (t) => {
  t.is(
    oneLine('first line\nsecond\r\n\tthird\u0000\u001b[31mred\u0085\u2028x\u202eevil\u2066', 300),
    'first line second third [31mred x evil',
  )
  const long = `${'m'.repeat(299)}😀 and on`
  const cut = oneLine(long, 300)
  t.is(cut.length, 300)
  t.true(cut.endsWith('…'))
  t.is(oneLine('x'.repeat(300), 300), 'x'.repeat(300), 'exactly 300: kept whole')
  // Never half of a surrogate pair at the cut.
  const pairAtCut = oneLine(`${'m'.repeat(298)}😀😀😀`, 300)
  t.is(pairAtCut, `${'m'.repeat(298)}…`)
  t.false(/[\ud800-\udbff](?![\udc00-\udfff])/.test(pairAtCut), 'no lone high surrogate')
  t.is(oneLine(undefined, 300), '')
  // Through the ring: names and messages alike, and an exception without a message.
  const ring = new RecentFailures()
  ring.add(0, { name: 'Bad\nName', message: `a\n${'b'.repeat(1000)}` }, 5)
  ring.add(0, { name: undefined }, 6)
  const [bare, lined] = ring.list(() => ({ model: 'm', operation: 'InvokeModel' }))
  t.is(lined.error, 'Bad Name')
  t.is(lined.message.length, 300)
  t.true(lined.message.startsWith('a b'))
  t.deepEqual(bare, { at: 6, model: 'm', operation: 'InvokeModel', error: 'Error', message: '' })
})

test('the Errors section renders the failures escaped, links a job the page knows, and leaves out the columns no failure has', (t) => {
  const arn = 'arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456'
  const other = 'arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/zzz999zzz999'
  const snap = {
    now: 2_000_000,
    stats: { jobs: [{ jobArn: arn, jobName: 'my-job', modelId: CLAUDE, status: 'Completed', errorRecordCount: 1 }] },
    failures: [
      {
        at: 1_990_000,
        model: CLAUDE,
        operation: 'InvokeModel',
        error: 'ValidationException',
        message: 'bad <b>x</b> & "y"',
        jobArn: arn,
      },
      {
        at: 1_980_000,
        model: '<m>',
        operation: 'Converse',
        error: 'ThrottlingException',
        message: 'slow down',
        jobArn: other,
      },
      { at: 1_970_000, model: CLAUDE, operation: 'Converse', error: 'ModelErrorException', message: 'on-demand' },
    ],
  }
  const html = view.renderErrors(snap)
  t.true(
    html.includes('<td class="message" data-field="message">bad &lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;</td>'),
    html,
  )
  t.false(html.includes('<b>x</b>'))
  t.true(html.includes(`<a href="jobs/abc123def456" title="${arn}">my-job</a>`), 'a known job links to its page')
  t.true(html.includes(`<span title="${other}">zzz999zzz999</span>`), 'an unknown job: its id')
  t.true(html.includes('&lt;m&gt;'))
  t.is((html.match(/<tr data-failure=/g) ?? []).length, 3)
  t.true(html.includes('<th scope="col">When</th>') && html.includes('<th scope="col">Operation</th>'))
  t.false(html.includes('<th scope="col">Record</th>'), 'no record ids from serve')
  t.false(html.includes('data-field="noFailures"'))
  // A store's failed records: no time, no operation, a record id.
  const stored = view.renderFailures({
    now: 0,
    stats: { jobs: [] },
    failures: [{ model: CLAUDE, error: 'ValidationException', message: MALFORMED, jobArn: arn, recordId: 'r1' }],
  })
  t.false(stored.includes('>When<'))
  t.false(stored.includes('>Operation<'))
  t.true(stored.includes('<td data-label="Record" data-field="record">r1</td>'))
  // None: said so.
  t.true(view.renderErrors({ now: 0, stats: { jobs: [] }, failures: [] }).includes('data-field="noFailures"'))
})

// ---------------------------------------------------------------------------
// A client's door

test('a rejected request is kept with its message; an aborted one is not a failure; destroyed ones are ClientClosedException', async (t) => {
  const { emu } = await startEmu(t)
  // A long batch timeout and a high minimum: the calls wait in the queue until aborted or destroyed.
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 60, minBatchSize: 100 } })
  const door = client._door
  const controller = new AbortController()
  const aborted = settle(client.send(claudeCommand('abort me'), { abortSignal: controller.signal }))
  const destroyed = settle(client.send(claudeCommand('destroy me')))
  await waitFor('the calls to be queued', () => client.stats().queued === 2)
  controller.abort()
  t.is((await aborted).error.name, 'AbortError')
  t.deepEqual(door.recentFailures(), [], 'an abort is the caller giving up, not a failure')
  t.is(door.requestSummary().models[0].aborted, 1, 'it was counted, as aborted')
  const before = Date.now()
  client.destroy()
  const o = await destroyed
  t.is(o.error.name, 'ClientClosedException')
  const failures = door.recentFailures()
  t.is(failures.length, 1)
  t.like(failures[0], {
    model: CLAUDE,
    operation: 'InvokeModel',
    error: 'ClientClosedException',
    message: o.error.message,
  })
  t.true(failures[0].at >= before && failures[0].at <= Date.now())
  t.is(failures[0].jobArn, undefined)
})

// ---------------------------------------------------------------------------
// serve's page

/** A raw InvokeModel call through serve: `{ status, text }`. */
function invoke(url, body, headers = {}) {
  return fetch(`${url}/model/${encodeURIComponent(CLAUDE)}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body,
  }).then(async (res) => ({ status: res.status, text: await res.text() }))
}

/** The failure rows of a page: `[{ error, model, operation, message, job, jobLink, at }]`. */
function failureRows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#errors tr[data-failure]')].map((tr) => {
      const field = (name) => tr.querySelector(`[data-field="${name}"]`)
      return {
        error: field('error').textContent,
        model: field('model').textContent,
        operation: field('operation').textContent,
        message: field('message').textContent,
        job: field('job').textContent,
        jobLink: field('job').querySelector('a')?.getAttribute('href') ?? null,
        at: field('at').textContent,
      }
    }),
  )
}

test('serve: the last failures with their names and messages on the page (first view and live), in dashboard.json and the job page; the failing bodies (a canary) nowhere, nor in the metrics', async (t) => {
  const browser = await launch(t)
  const { emu } = await startEmu(t, { minRecords: 1 })
  const srv = await startServe(t, emu, {
    prefix: unique('dashfail'),
    batch: { minBatchSize: 1, maxBatchSize: 4, batchTimeout: 0.1 },
  })
  const canary = `canary-${randomUUID()}`

  // The live page, opened before anything failed.
  const page = await browser.newPage()
  const consoleErrors = []
  page.on('pageerror', (err) => consoleErrors.push(String(err)))
  await page.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
  t.is(await page.$eval('#errors [data-field="noFailures"]', (e) => e.textContent), 'No failed requests.')

  // A batch record that fails (the emulator's ValidationException), an on-demand call that fails
  // (its deadline too close for a job), one answered: each body holds the canary.
  const batchFail = await invoke(srv.url, JSON.stringify(claudeBody(`${canary} in a record [[error:400]]`)))
  const onDemandFail = await invoke(srv.url, JSON.stringify(claudeBody(`${canary} on demand [[error:400]]`)), {
    'x-bedrock-batch-deadline': String(Date.now() + 100),
  })
  const answered = await invoke(srv.url, JSON.stringify(claudeBody(`${canary} answered`)))
  t.is(batchFail.status, 400)
  t.is(onDemandFail.status, 400)
  t.is(answered.status, 200)
  t.true(answered.text.includes(canary), 'the canary went through the run')
  t.true(batchFail.text.includes(MALFORMED), batchFail.text)

  const stats = await srv.stats()
  const job = stats.jobs.find((j) => j.errorRecordCount === 1)
  t.truthy(job, 'the job of the failed record')
  const polled = await (await fetch(`${srv.url}/_bridge/dashboard.json`)).json()
  t.is(polled.failures.length, 2)
  const [newest, oldest] = polled.failures
  t.true(newest.at >= oldest.at, 'newest first')
  t.deepEqual(oldest, {
    at: oldest.at,
    model: CLAUDE,
    operation: 'InvokeModel',
    error: 'ValidationException',
    message: MALFORMED,
    jobArn: job.jobArn,
  })
  t.deepEqual(newest, {
    at: newest.at,
    model: CLAUDE,
    operation: 'InvokeModel',
    error: 'ValidationException',
    message: MALFORMED,
  })
  t.true(Math.abs(newest.at - Date.now()) < 60_000, 'epoch ms')

  // Live: the page's poll draws them, newest first, the record's job linked to its page.
  await page.waitForFunction(() => document.querySelectorAll('#errors tr[data-failure]').length === 2, {
    timeout: 15_000,
    polling: 100,
  })
  const clock = (ms) => `${new Date(ms).toISOString().slice(11, 19)} UTC`
  const expected = [
    {
      error: 'ValidationException',
      model: CLAUDE,
      operation: 'InvokeModel',
      message: MALFORMED,
      job: '—',
      jobLink: null,
      at: clock(newest.at),
    },
    {
      error: 'ValidationException',
      model: CLAUDE,
      operation: 'InvokeModel',
      message: MALFORMED,
      job: job.jobName,
      jobLink: `jobs/${job.jobArn.split('/').pop()}`,
      at: clock(oldest.at),
    },
  ]
  t.deepEqual(await failureRows(page), expected)
  t.deepEqual(consoleErrors, [])

  // With JavaScript off, the server-rendered first view holds the same rows.
  const still = await browser.newPage()
  await still.setJavaScriptEnabled(false)
  await still.goto(`${srv.url}/_bridge/`, { waitUntil: 'load' })
  t.deepEqual(await failureRows(still), expected)
  t.is(await still.evaluate(() => document.body.dataset.polls), undefined, 'no script ran')

  // The job's page: its failure with the message.
  const jobPage = await (await fetch(`${srv.url}/_bridge/${expected[1].jobLink}`)).text()
  t.true(jobPage.includes(`<td class="message" data-field="message">${MALFORMED}</td>`), 'the message on the job page')

  // Metrics count them by name; no body anywhere.
  const metrics = await (await fetch(`${srv.url}/_bridge/metrics`)).text()
  const errors = parsePrometheus(metrics).find((f) => f.name === 'bedrock_batch_request_errors_total')
  t.deepEqual(
    errors.metrics.map((m) => [m.labels.error, m.labels.operation, m.value]),
    [['ValidationException', 'InvokeModel', '2']],
  )
  const html = await (await fetch(`${srv.url}/_bridge/`)).text()
  const json = await (await fetch(`${srv.url}/_bridge/dashboard.json`)).text()
  for (const [where, text] of [
    ['the first view', html],
    ['dashboard.json', json],
    ['the live page', await page.content()],
    ['the job page', jobPage],
    ['the metrics', metrics],
  ]) {
    t.false(text.includes(canary), `no body in ${where}`)
    t.false(text.includes('[[error:400]]'), `no body in ${where}`)
  }
  t.true(html.includes(MALFORMED) && json.includes(MALFORMED), 'while the message is there')
})
