// Job statuses come from one place, the engine (crates/core/src/status.rs through the binding's
// jobStatuses()): the JavaScript side's list is exactly the ModelInvocationJobStatus enum of
// Bedrock's service model (botocore's, the version .ci/test pins: BOTOCORE_PYTHON), in order, and
// the ones that end a job are the five AWS documents as terminal.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const { STATUSES, TERMINAL } = require('../lib/job-status.js')

/** The Python with the pinned botocore: BOTOCORE_PYTHON, else the virtual environment .ci/test makes. */
function python() {
  const bin = process.env.BOTOCORE_PYTHON || path.join(here, '..', '.cache', 'botocore', 'bin', 'python')
  if (!existsSync(bin))
    throw new Error(`no Python with botocore at ${bin}: run bash .ci/test (it installs it) or set BOTOCORE_PYTHON`)
  return bin
}

test("the engine's job statuses are botocore's ModelInvocationJobStatus, and the terminal ones AWS's five", (t) => {
  const r = spawnSync(
    python(),
    [
      '-c',
      "import botocore.session, json; m = botocore.session.get_session().get_service_model('bedrock'); print(json.dumps(m.shape_for('ModelInvocationJobStatus').enum))",
    ],
    { encoding: 'utf8', env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } },
  )
  t.is(r.status, 0, r.stderr)
  const model = JSON.parse(r.stdout)
  t.true(model.length >= 10, `the model's enum: ${r.stdout}`)
  t.deepEqual([...STATUSES].sort(), [...model].sort(), 'the same statuses as the service model')
  t.deepEqual([...TERMINAL].sort(), ['Completed', 'Expired', 'Failed', 'PartiallyCompleted', 'Stopped'])
})
