'use strict'
// Bedrock's batch job statuses as the JavaScript side tests them (the engine has its own in
// crates/core/src/status.rs; the dashboard's browser view, lib/dashboard/view.js, keeps a copy it
// can run without require).

/** The statuses after which a job does not change any more. */
const TERMINAL = new Set(['Completed', 'PartiallyCompleted', 'Failed', 'Stopped', 'Expired'])

module.exports = { TERMINAL }
