// Watching a long run: `progress` snapshots, one `job` event per status change, and stats() with
// the estimated saving against on-demand prices. Runs against the built-in emulator.
import {
  BatchInferenceClient,
  InvokeModelCommand,
  type JobStats,
  type Stats,
  startEmulator,
} from 'bedrock-batch-bridge'

const HAIKU = 'anthropic.claude-3-haiku-20240307-v1:0'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'realistic' })
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: {
      s3InputUri: `s3://${emu.bucket}/batch-input/`,
      s3OutputUri: `s3://${emu.bucket}/batch-output/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      maxBatchSize: 500,
      batchTimeout: 1,
      pollInterval: 1,
    },
    // On-demand prices (USD per 1,000 tokens) give stats().estimatedSavingUsd.
    pricing: { [HAIKU]: { inputPer1kTokens: 0.00025, outputPer1kTokens: 0.00125 } },
  })

  // At most a few snapshots a second; listeners never keep the process alive.
  client.on('progress', (s: Stats) => {
    const done = s.jobs.reduce((n, j) => n + j.processedRecordCount, 0)
    console.log(`queued ${s.queued}, in flight ${s.inFlight}, ${done} records processed in ${s.jobs.length} job(s)`)
  })
  client.on('job', (job: JobStats) =>
    console.log(`job ${job.jobName}: ${job.status} (${job.successRecordCount}/${job.totalRecordCount} ok)`),
  )

  const answers = await Promise.all(
    Array.from({ length: 1200 }, (_, i) =>
      client.send(
        new InvokeModelCommand({
          modelId: HAIKU,
          contentType: 'application/json',
          body: JSON.stringify({
            anthropic_version: 'bedrock-2023-05-31',
            max_tokens: 64,
            messages: [{ role: 'user', content: `Name a prime above ${i}.` }],
          }),
        }),
      ),
    ),
  )

  const s = client.stats()
  console.log(
    `${answers.length} answers from ${s.jobs.length} jobs; ${s.tokens.input} input and ${s.tokens.output} output tokens`,
  )
  console.log(`padded ${s.padded}, resubmitted ${s.resubmitted}, sent on-demand ${s.sentDirect}`)
  console.log(`estimated saving: $${s.estimatedSavingUsd?.toFixed(4)}`)
  await client.close()
  await emu.stop()
}

void main()
