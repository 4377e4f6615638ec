// Progress events: stats() snapshots on changes, throttled, ending with everything settled.
import test from 'ava'
import { claudeCommand, makeClient, startEmu } from './helpers.mjs'

test('progress listeners see queued work drain to zero, at most a few events per second', async (t) => {
  const { emu } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { batchTimeout: 0.1 } })
  const events = []
  client.on('progress', (s) => events.push({ at: performance.now(), ...s }))
  const t0 = performance.now()
  await Promise.all(Array.from({ length: 150 }, (_, i) => client.send(claudeCommand(`progress ${i}`))))
  // The last snapshot comes after the last settlement, within the throttle interval.
  const deadline = performance.now() + 2000
  while ((events.length === 0 || events.at(-1).inFlight !== 0) && performance.now() < deadline)
    await new Promise((r) => setTimeout(r, 50))
  t.true(events.length >= 1)
  const last = events.at(-1)
  t.is(last.queued, 0)
  t.is(last.inFlight, 0)
  t.is(last.jobs.length, 2)
  t.true(last.jobs.every((j) => j.status === 'Completed'))
  for (let i = 1; i < events.length; i++) t.true(events[i].at - events[i - 1].at >= 200, 'throttled')
  t.true(events.length <= Math.ceil((performance.now() - t0) / 200) + 1)
})
