// Crash recovery: with a journal, a script killed mid-run and started again gets every answer
// without a second job for work already submitted. Runs against the built-in emulator.
import { BatchInferenceClient, InvokeModelCommand, type StoredJob, startEmulator } from 'bedrock-batch-bridge'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'fast', minRecords: 1 })
  const client = new BatchInferenceClient({
    region: emu.region,
    // A credentials function, as the AWS SDK takes: called again before the credentials expire.
    credentials: async () => ({ ...emu.credentials, expiration: new Date(Date.now() + 3600_000) }),
    endpoints: emu.endpoints,
    journal: { path: './.bedrock-batch/journal.db', retentionDays: 7 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/in/`,
      s3OutputUri: `s3://${emu.bucket}/out/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      batchTimeout: 1,
      pollInterval: 0.1,
    },
  })
  const rows = ['alpha', 'beta', 'gamma']
  const outs = await Promise.all(
    rows.map((row) =>
      client.send(
        new InvokeModelCommand({
          modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
          contentType: 'application/json',
          body: JSON.stringify({
            anthropic_version: 'bedrock-2023-05-31',
            max_tokens: 64,
            messages: [{ role: 'user', content: `Label: ${row}` }],
          }),
        }),
        // Rows sent again after a restart resolve from the journal by this key.
        { idempotencyKey: `row-${row}` },
      ),
    ),
  )
  console.log(outs.map((o) => o.body.transformToString().length))
  const jobs: StoredJob[] = await client.jobs()
  for (const job of jobs) {
    for await (const r of client.results(job.jobArn))
      console.log(r.recordId, r.idempotencyKey, r.output ? 'ok' : r.error?.name)
  }
  console.log(client.stats().store?.bytes, 'bytes of journal')
  await client.close()
  await emu.stop()
}

void main()
