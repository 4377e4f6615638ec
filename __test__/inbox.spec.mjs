// The door's inbox: the engine's events handled in order, in slices that give timers and I/O their
// turns (a million answers arriving at once must not stall the process for seconds).
import { createRequire } from 'node:module'
import test from 'ava'

const require = createRequire(import.meta.url)
const { Inbox, SLICE_MS } = require('../lib/inbox.js')

/** Busy for `ms` (the work of handling an event). */
function busy(ms) {
  const until = performance.now() + ms
  while (performance.now() < until);
}

test('events are handled in order, and a timer runs between slices while they are', async (t) => {
  const seen = []
  const inbox = new Inbox((n) => {
    busy(2)
    seen.push(n)
  })
  // 200 events of 2 ms: 400 ms of work, about 20 slices.
  for (let i = 0; i < 200; i++) inbox.push(i)
  const timerSawHandled = await new Promise((resolve) => setTimeout(() => resolve(seen.length), 0))
  t.true(timerSawHandled > 0, 'the timer waited for at least one slice')
  t.true(timerSawHandled < 200, `the timer ran before the last event was handled (after ${timerSawHandled})`)
  t.true(timerSawHandled <= Math.ceil(SLICE_MS / 2) + 2, `one slice at most before the timer (${timerSawHandled})`)
  await inbox.drained()
  t.deepEqual(
    seen,
    Array.from({ length: 200 }, (_, i) => i),
  )
})

test('drained() resolves at once when nothing waits, and after the last event otherwise', async (t) => {
  const seen = []
  const inbox = new Inbox((n) => seen.push(n))
  await inbox.drained()
  inbox.push('a')
  inbox.push('b')
  t.deepEqual(seen, [], 'not handled in the pushing turn')
  await inbox.drained()
  t.deepEqual(seen, ['a', 'b'])
  inbox.push('c')
  await inbox.drained()
  t.deepEqual(seen, ['a', 'b', 'c'])
})
