// What a run will cost: a dry run's plan first, then the run under a hard cap. Runs against the
// built-in emulator.
import {
  BatchInferenceClient,
  type BatchInferenceClientOptions,
  CostLimitExceededException,
  DryRunException,
  InvokeModelCommand,
  type RunPlan,
  startEmulator,
} from 'bedrock-batch-bridge'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'fast' })
  const options: BatchInferenceClientOptions = {
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
    batch: {
      s3InputUri: `s3://${emu.bucket}/spend/input/`,
      s3OutputUri: `s3://${emu.bucket}/spend/output/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      maxBatchSize: 100,
      batchTimeout: 1,
      pollInterval: 0.1,
    },
  }
  const question = (i: number) =>
    new InvokeModelCommand({
      contentType: 'application/json',
      body: JSON.stringify({
        anthropic_version: 'bedrock-2023-05-31',
        max_tokens: 256, // under a cap, every request sets its maximum output tokens
        messages: [{ role: 'user', content: `What is ${i} + ${i}?` }],
      }),
    })

  // 1. The dry run: batches are formed, nothing is uploaded, created or sent.
  const dry = new BatchInferenceClient({ ...options, dryRun: true })
  const held = Array.from({ length: 500 }, (_, i) =>
    dry.send(question(i)).catch((e: unknown) => (e instanceof DryRunException ? 'not sent' : Promise.reject(e))),
  )
  const plan: RunPlan = await dry.plan()
  await Promise.all(held) // each ended with DryRunException once the plan was read
  await dry.close()
  console.log(
    `${plan.total.jobs} jobs, ${plan.total.records} records (+${plan.total.paddedRecords} padded),`,
    `at most $${plan.total.costUsd} (all standard: $${plan.total.standardCostUsd});`,
    `input tokens by ${plan.models[0].inputTokensMethod}`,
  )

  // 2. The run, under a cap of twice the plan's upper bound.
  const client = new BatchInferenceClient({ ...options, maxCostUsd: (plan.total.costUsd ?? 0) * 2 })
  const answers = await Promise.all(
    Array.from({ length: 500 }, (_, i) =>
      client.send(question(i)).then(
        () => 'answered',
        (e: unknown) => (e instanceof CostLimitExceededException ? `over the cap by $${e.estimateUsd}` : 'failed'),
      ),
    ),
  )
  await client.close()
  console.log(answers.filter((a) => a === 'answered').length, 'answered; spend', client.stats().spend)
  await emu.stop()
}

void main()
