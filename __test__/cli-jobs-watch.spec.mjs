// `bedrock-batch-bridge jobs watch` in a real terminal: tmux (a server of the test's own, on its
// own socket) runs `node cli.js jobs watch` in a 120x30 pane while a client runs jobs on the
// emulator; the test reads the screen with `tmux capture-pane` and checks that each job's line (bar,
// counts, status) is redrawn in place, then that it exits by itself once its jobs have ended (unless
// --follow), and that q or Ctrl-C quits it. Piped, the same command prints a line each time a job
// changes. A machine without tmux FAILS this test
// (`.ci/run` installs it).

import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import test from 'ava'

import { CLI, childEnv, claudeCommand, makeClient, settle, startEmu, unique, waitFor } from './helpers.mjs'

/** The emulator's endpoints and credentials as the CLI takes them. */
function emuEnv(emu) {
  return childEnv({
    AWS_ENDPOINT_URL_BEDROCK: emu.endpoints.bedrock,
    AWS_ENDPOINT_URL_S3: emu.endpoints.s3,
    AWS_ACCESS_KEY_ID: emu.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: emu.credentials.secretAccessKey,
    AWS_REGION: emu.region,
  })
}

/** tmux, or a failure that says it is missing. */
function tmuxVersion() {
  const v = spawnSync('tmux', ['-V'], { encoding: 'utf8' })
  if (v.error || v.status !== 0)
    throw new Error(
      `tmux is needed for the jobs watch test (a real terminal) and was not found: install it ("apt-get install -y tmux"; .ci/run does it): ${v.error?.message ?? v.stderr}`,
    )
  return v.stdout.trim()
}

/**
 * A tmux server of this test's own running `command` in a detached 120x30 session; `screen()` is
 * the visible pane, `scrollback()` the pane with its history; killed in teardown.
 */
function terminal(t, command, env) {
  const socket = `bbb-watch-${randomUUID().slice(0, 8)}`
  const tmux = (...args) => spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8', env })
  const started = tmux('new-session', '-d', '-x', '120', '-y', '30', command)
  if (started.status !== 0) throw new Error(`tmux new-session failed: ${started.stderr}`)
  t.teardown(() => tmux('kill-server'))
  const capture = (...args) => {
    const out = tmux('capture-pane', '-p', ...args)
    if (out.status !== 0) throw new Error(`tmux capture-pane failed: ${out.stderr}`)
    return out.stdout
  }
  const screen = () => capture()
  /** Polls the screen until `probe(screen)` is truthy; on time out, the error shows the last screen. */
  const until = (what, probe, timeoutMs = 30_000) =>
    waitFor(what, () => probe(screen()), { timeoutMs, intervalMs: 50 }).catch((err) => {
      throw new Error(`${err.message}; the screen:\n${screen()}`)
    })
  const keys = (...k) => {
    const sent = tmux('send-keys', ...k)
    if (sent.status !== 0) throw new Error(`tmux send-keys failed: ${sent.stderr}`)
  }
  /** Whether the pane shows its cursor (tmux's cursor_flag). */
  const cursorShown = () => tmux('display-message', '-p', '#{cursor_flag}').stdout.trim() === '1'
  return { screen, until, keys, cursorShown, scrollback: () => capture('-S', '-') }
}

/** The screen's lines of the jobs named with `prefix`. */
const jobLines = (screen, prefix) => screen.split('\n').filter((l) => l.startsWith(prefix))

/** Eight calls in two jobs of four records, both held InProgress (half answered) by `[[job:slow]]`. */
function sendTwoJobs(client, prefix) {
  return Promise.all(
    [...Array(8).keys()].map((i) =>
      settle(client.send(claudeCommand(`${prefix} question ${i}${i % 4 === 0 ? ' [[job:slow]]' : ''}`))),
    ),
  )
}

test('jobs watch in a terminal: one line per job, bars and counts redrawn in place from InProgress to Completed; it exits by itself once they ended', async (t) => {
  t.log(tmuxVersion())
  const { emu } = await startEmu(t, { minRecords: 1, slowJobSeconds: 6 })
  const prefix = unique('watch')
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1, maxBatchSize: 4, jobNamePrefix: prefix } })
  const term = terminal(
    t,
    `'${process.execPath}' '${CLI}' jobs watch --name-contains ${prefix} --interval 0.2; echo "watch exited: $?"; sleep 600`,
    emuEnv(emu),
  )
  // Before any job: the header and "no jobs yet".
  await term.until('the header line', (screen) => /Bedrock: 0 jobs, 0 running/.test(screen), 20_000)
  t.regex(term.screen(), /no jobs yet/)

  const calls = sendTwoJobs(client, prefix)
  const held = await term.until('both jobs InProgress, half their records processed, on the screen', (screen) => {
    const lines = jobLines(screen, prefix)
    return lines.length === 2 && lines.every((l) => /InProgress .*\[#{8}\.{8}\] {2}50%\s+2\/4 {2}ok 2 {2}err 0/.test(l))
      ? lines
      : null
  })
  t.regex(term.screen(), /Bedrock: 2 jobs, 2 running · updated \d\d:\d\d:\d\d UTC/)
  for (const l of held) t.regex(l, /ETA (estimating…|~\d)/)

  const done = await term.until('the watch to end by itself once both jobs completed', (screen) =>
    /watch exited: \d+/.test(screen) ? screen : null,
  )
  t.regex(done, /watch exited: 0/)
  const lines = jobLines(done, prefix)
  t.is(lines.length, 2, `one line per job:\n${done}`)
  for (const l of lines) t.regex(l, /Completed .*\[#{16}\] 100%\s+4\/4 {2}ok 4 {2}err 0 .*ETA ended/)
  t.regex(done, /Bedrock: 2 jobs, 0 running/)
  // Redrawn in place: the pane's whole history holds each job once, and one header.
  const history = term.scrollback()
  t.is(jobLines(history, prefix).length, 2, `no line appended by a redraw:\n${history}`)
  t.is(history.match(/Bedrock: \d+ jobs/g).length, 1)
  const jobs = client.stats().jobs
  t.deepEqual(
    jobs.map((j) => j.status),
    ['Completed', 'Completed'],
  )
  for (const j of jobs)
    t.true(
      lines.some((l) => l.startsWith(j.jobName)),
      j.jobName,
    )
  t.true((await calls).every((o) => o.ok))
})

test('jobs watch piped: plain lines, one each time a job changes; --until-done (the default, kept as an alias) exits 0', async (t) => {
  const { emu } = await startEmu(t, { minRecords: 1, slowJobSeconds: 3 })
  const prefix = unique('watchpipe')
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1, maxBatchSize: 4, jobNamePrefix: prefix } })
  const child = spawn(
    process.execPath,
    [CLI, 'jobs', 'watch', '--name-contains', prefix, '--interval', '0.1', '--until-done'],
    { env: emuEnv(emu) },
  )
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d
  })
  const exited = new Promise((resolve) => child.on('close', resolve))
  t.teardown(() => child.exitCode === null && child.kill('SIGKILL'))
  const calls = await sendTwoJobs(client, prefix)
  t.true(calls.every((o) => o.ok))
  t.is(await exited, 0)
  t.false(out.includes('\x1b['), 'no terminal codes when piped')
  const lines = out.trim().split('\n')
  for (const j of client.stats().jobs) {
    const mine = lines.filter((l) => l.includes(j.jobName))
    t.regex(mine.at(-1), /Completed .* 100%\s+4\/4 {2}ok 4 {2}err 0/)
    t.true(
      mine.some((l) => /InProgress .* {2}50%\s+2\/4/.test(l)),
      `its InProgress line was printed:\n${out}`,
    )
    // A line only when the job changed: no two lines of a job alike but for the time.
    const bodies = mine.map((l) => l.replace(/^\d\d:\d\d:\d\d UTC\s+/, '').replace(/\s+\S+\s+ETA .*$/, ''))
    t.is(new Set(bodies).size, bodies.length, `no repeated line:\n${mine.join('\n')}`)
  }
})

test('jobs watch in a terminal ends on Ctrl-C with exit code 0 and its cursor shown again', async (t) => {
  tmuxVersion()
  const { emu } = await startEmu(t)
  const term = terminal(
    t,
    `'${process.execPath}' '${CLI}' jobs watch --name-contains ${unique('none')} --interval 0.2; echo "watch exited: $?"; sleep 600`,
    emuEnv(emu),
  )
  await term.until('the header line', (screen) => /Bedrock: 0 jobs, 0 running/.test(screen), 20_000)
  t.false(term.cursorShown(), 'the cursor is hidden while the lines are redrawn')
  term.keys('C-c')
  const screen = await term.until('the watch to end on Ctrl-C', (s) => (/watch exited: \d+/.test(s) ? s : null))
  t.regex(screen, /watch exited: 0/)
  t.true(term.cursorShown(), 'the cursor is shown again')
})

test('jobs watch --follow in a terminal keeps watching after its jobs ended; q quits with exit code 0, the cursor shown and the terminal out of raw mode', async (t) => {
  tmuxVersion()
  const { emu } = await startEmu(t, { minRecords: 1 })
  const prefix = unique('watchq')
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1, maxBatchSize: 4, jobNamePrefix: prefix } })
  const calls = await Promise.all([0, 1, 2, 3].map((i) => settle(client.send(claudeCommand(`${prefix} q ${i}`)))))
  t.true(calls.every((o) => o.ok))
  t.deepEqual(
    client.stats().jobs.map((j) => j.status),
    ['Completed'],
  )
  // After the watch: whether the terminal is back in canonical mode (stty prints "icanon", raw mode
  // "-icanon"). Node also resets a terminal it changed when it exits, so this checks the end state
  // the user gets, not which of the two restored it.
  const term = terminal(
    t,
    `'${process.execPath}' '${CLI}' jobs watch --name-contains ${prefix} --interval 0.2 --follow; echo "watch exited: $?"; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 600`,
    emuEnv(emu),
  )
  const header = /Bedrock: 1 jobs, 0 running · updated (\d\d:\d\d:\d\d) UTC/
  const first = await term.until('the ended job on the screen', (screen) => {
    const lines = jobLines(screen, prefix)
    return lines.length === 1 && /Completed .*4\/4/.test(lines[0]) && header.exec(screen)?.[1]
  })
  // It goes on reading after every job ended: the header's time moves on, and it has not exited.
  await term.until(
    'a later read with --follow',
    (screen) => {
      const at = header.exec(screen)?.[1]
      return at !== undefined && at !== first
    },
    10_000,
  )
  t.notRegex(term.screen(), /watch exited/)
  t.false(term.cursorShown(), 'the cursor is hidden while the lines are redrawn')
  term.keys('q')
  const screen = await term.until('the watch to end on q', (s) => (/watch exited: \d+/.test(s) ? s : null))
  t.regex(screen, /watch exited: 0/)
  const mode = await term.until('stty to print the mode', (s) => /^-?icanon$/m.exec(s)?.[0])
  t.is(mode, 'icanon', 'the terminal is out of raw mode')
  t.true(term.cursorShown(), 'the cursor is shown again')
})
