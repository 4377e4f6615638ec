'use strict'
// Bedrock's batch job statuses, from the engine (crates/core/src/status.rs through the binding's
// jobStatuses()); the dashboard's browser view, lib/dashboard/view.js, keeps a copy it can run
// without require.
const native = require('../binding.js')

const known = native.jobStatuses()

/** Every status the engine knows, in the order a job goes through them. */
const STATUSES = known.map((s) => s.name)

/** The statuses after which a job does not change any more. */
const TERMINAL = new Set(known.filter((s) => s.terminal).map((s) => s.name))

module.exports = { STATUSES, TERMINAL }
