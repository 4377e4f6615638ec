// An existing BedrockRuntimeClient, unchanged call sites: the plugin batches its InvokeModel and
// Converse calls (and their streaming twins) and lets every other command through. Runs against the built-in emulator.
import { BedrockRuntimeClient, ConverseCommand, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime'
import { batchPlugin, startEmulator } from 'bedrock-batch-bridge'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'fast' })
  // The app's client, as it was.
  const runtime = new BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoint: emu.endpoints.bedrockRuntime,
  })

  // One line more: region and credentials come from `client` (the host); the plugin is also the handle.
  const batch = batchPlugin({
    client: runtime,
    endpoints: { bedrock: emu.endpoints.bedrock, s3: emu.endpoints.s3 },
    batch: {
      s3InputUri: `s3://${emu.bucket}/batch-input/`,
      s3OutputUri: `s3://${emu.bucket}/batch-output/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      batchTimeout: 60,
      pollInterval: 0.1,
    },
  })
  runtime.middlewareStack.use(batch)

  // Unchanged call sites: these go into one batch job.
  const questions = Array.from({ length: 50 }, (_, i) => `What is ${i} squared?`)
  const pending = questions.map((q) =>
    runtime.send(
      new InvokeModelCommand({
        modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
        contentType: 'application/json',
        body: JSON.stringify({
          anthropic_version: 'bedrock-2023-05-31',
          max_tokens: 256,
          messages: [{ role: 'user', content: q }],
        }),
      }),
    ),
  )
  await batch.flush() // submit the queue now rather than after batchTimeout
  const answers = await Promise.all(pending)
  console.log(JSON.parse(answers[0].body.transformToString()).content[0].text, answers[0].$metadata.requestId)

  // Converse calls are batched too, as Converse-type jobs (flush to send them now).
  const chatting = runtime.send(
    new ConverseCommand({
      modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
      messages: [{ role: 'user', content: [{ text: 'Hi!' }] }],
    }),
  )
  await batch.flush()
  const chat = await chatting
  console.log(chat.output?.message?.content?.[0]?.text)

  console.log(`${batch.stats().jobs.length} batch job(s)`)
  // runtime.destroy() cannot wait for jobs: close the plugin first, it waits for every answer.
  await batch.close()
  runtime.destroy()
  await emu.stop()
}

void main()
