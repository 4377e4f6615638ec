// Job options reach CreateModelInvocationJob: vpcConfig (echoed by GetModelInvocationJob) and
// tags (the emulator validates them as AWS does, so a bad tag fails the batch's callers).
import test from 'ava'
import { claudeCommand, claudeText, getJob, listJobs, makeClient, settle, startEmu } from './helpers.mjs'

test('vpcConfig and tags are passed to each job', async (t) => {
  const { emu, bedrock } = await startEmu(t, { minRecords: 1 })
  const vpcConfig = { subnetIds: ['subnet-0abc'], securityGroupIds: ['sg-0def'] }
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1, vpcConfig, tags: { team: 'evals', run: '42' } } })
  const out = await client.send(claudeCommand('vpc please'))
  t.true(claudeText(out).includes('vpc please'))
  const [job] = await listJobs(bedrock)
  const described = await getJob(bedrock, job.jobArn)
  t.deepEqual(described.vpcConfig, vpcConfig)
})

test('a tag AWS would refuse rejects the callers of that batch with ValidationException', async (t) => {
  const { emu, bedrock } = await startEmu(t)
  const { client } = makeClient(t, emu, { batch: { minBatchSize: 1, tags: [{ key: '', value: 'x' }] } })
  const o = await settle(client.send(claudeCommand('tagged')))
  t.false(o.ok)
  t.is(o.error.name, 'ValidationException')
  t.regex(o.error.message, /tags/)
  t.is((await listJobs(bedrock)).length, 0)
})
