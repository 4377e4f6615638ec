// Fuzzing of serve's request parsers in CI (issue 23): every stored input of
// __test__/fixtures/fuzz-wires/<target>/ (the seed corpus, and each failure bench/fuzz-wires.mjs
// found) replayed through its target, then a short seeded pass of generated inputs per target.
// The targets and invariants are in wire-fuzz.mjs.

import test from 'ava'
import fc from 'fast-check'
import { check, corpus, Harness, property, TARGETS } from './wire-fuzz.mjs'

/** Generated inputs per target in CI (a fixed seed: the same inputs every run). */
const RUNS = 300
const SEED = 23

for (const target of TARGETS) {
  test(`${target}: the stored inputs hold every invariant`, async (t) => {
    const inputs = corpus(target)
    t.true(inputs.length >= 5, `a seed corpus for ${target}`)
    const harness = await Harness.start()
    t.teardown(() => harness.close())
    const problems = []
    for (const { name, input } of inputs) {
      const problem = await check(harness, target, input)
      if (problem) problems.push(`${name}: ${problem}`)
    }
    t.deepEqual(problems, [])
  })

  test(`${target}: ${RUNS} generated inputs hold every invariant`, async (t) => {
    const harness = await Harness.start()
    t.teardown(() => harness.close())
    const result = await fc.check(property(harness, target), { seed: SEED, numRuns: RUNS })
    t.false(result.failed, fc.defaultReportMessage(result))
  })
}

// Found with the OpenAI wire's X-Stainless-Timeout of 1e308: a deadline of Infinity failed every
// request of its submit chunk with an untyped error. The door refuses such a request alone.
test('door: a deadline of Infinity fails its own request with ValidationException, not the other requests of its chunk', async (t) => {
  const harness = await Harness.start()
  t.teardown(() => harness.close())
  const body = Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'Hi' }] }] }))
  const send = (options) =>
    harness.door.submit(1, 'Converse', 'amazon.nova-lite-v1:0', body, options).then(
      () => 'answered',
      (err) => err.name,
    )
  const innocent = send({ idempotencyKey: 'innocent' })
  const bad = send({ idempotencyKey: 'bad', deadline: Number.POSITIVE_INFINITY })
  await harness.door.plan()
  t.is(await innocent, 'DryRunException')
  t.is(await bad, 'ValidationException')
})
