'use strict'
// `bedrock-batch-bridge jobs adopt`: records jobs that no journal knows (created by a run without
// a journal, or a script that crashed) in a journal, by ARN or id, or every job whose name starts
// with --name-prefix (submitted since --since). A later run with that journal polls them and keeps
// their answers; with --wait this command does it now, and says what came back.

const { namedFailure, UsageError } = require('./command.js')

/**
 * The batch settings the adopting client runs with: from the flags or the environment, else
 * from the job itself (a record sent again goes where its job's records went).
 */
function batchSettings(o, job) {
  const parent = (uri) => (uri ? uri.replace(/[^/]+\/?$/, '') : undefined)
  return {
    s3InputUri: o.s3InputUri || process.env.BEDROCK_BATCH_S3_INPUT_URI || parent(job?.inputUri),
    s3OutputUri: o.s3OutputUri || process.env.BEDROCK_BATCH_S3_OUTPUT_URI || job?.outputUri,
    roleArn: o.roleArn || process.env.BEDROCK_BATCH_ROLE_ARN || job?.roleArn,
    pollInterval: o.pollInterval,
  }
}

/**
 * `jobs adopt [job]`: `admin` is the command's NativeAdmin, `check` throws a result's error, `aws`
 * the command's `{ endpoints, region? }`.
 */
async function adoptJobs(admin, check, aws, o, id) {
  if (!o.journal) throw new UsageError('jobs adopt records jobs in a journal: give --journal FILE')
  if (Boolean(id) === Boolean(o.namePrefix))
    throw new UsageError('jobs adopt takes a job ARN or id, or --name-prefix PREFIX (one of them)')
  if (o.since && !o.namePrefix) throw new UsageError('--since goes with --name-prefix')
  // One job of the kind adopted, for the settings the flags and environment do not give.
  let sample
  if (id) {
    const r = await admin.getJob(id)
    check(r.error)
    sample = r.job
  } else {
    const page = await admin.listJobs({ nameContains: o.namePrefix, maxResults: 10 })
    check(page.error)
    sample = page.jobs.find((j) => j.jobName.startsWith(o.namePrefix))
    if (!sample) return console.log(`no job whose name starts with ${JSON.stringify(o.namePrefix)}`)
  }
  const { BatchInferenceClient } = require('../index.js')
  const options = { ...aws, journal: { path: o.journal }, batch: batchSettings(o, sample) }
  let client
  try {
    client = new BatchInferenceClient(options)
    const found = await client.adopt(id ? { jobArn: id } : { namePrefix: o.namePrefix, since: o.since })
    if (o.json && !o.wait) console.log(JSON.stringify(found))
    else
      for (const j of found)
        console.log(
          j.adopted
            ? `adopted  ${j.jobName}  ${j.status}  ${j.records} records (${j.keyed} keyed by content)\n         ${j.jobArn}`
            : `left     ${j.jobName}: ${j.reason}\n         ${j.jobArn}`,
        )
    if (!o.wait) {
      if (found.some((j) => j.adopted))
        console.error(
          `the next run with --journal ${o.journal} (or journal: { path }) polls them and keeps their answers`,
        )
      return
    }
    // Wait until they end and their answers are in the journal.
    await client.close()
    const adopted = new Set(found.filter((j) => j.adopted).map((j) => j.jobArn))
    const ended = (await client.jobs()).filter((j) => adopted.has(j.jobArn))
    if (o.json) return console.log(JSON.stringify(ended))
    for (const j of ended)
      console.log(
        `${j.status.padEnd(18)} ${j.jobName}: ${j.successRecordCount} answers, ${j.errorRecordCount} errors kept in ${o.journal}`,
      )
  } catch (err) {
    throw err?.name && err.name !== 'Error' ? namedFailure(err) : err
  } finally {
    client?.destroy()
  }
}

module.exports = { adoptJobs }
