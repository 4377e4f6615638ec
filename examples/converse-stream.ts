// ConverseStreamCommand, batched: each stream's answer comes from a batch job and is replayed as the events
// ConverseStream gives (messageStart, contentBlockDelta..., messageStop, metadata), so stream-reading code
// works unchanged at batch prices. With `batch.streaming: 'direct'` the same code gets live on-demand streams.
// Runs against the built-in emulator.
import { BatchInferenceClient, ConverseStreamCommand, type StopReason, startEmulator } from 'bedrock-batch-bridge'

const HAIKU = 'anthropic.claude-3-haiku-20240307-v1:0'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'fast' })
  const client = new BatchInferenceClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: {
      s3InputUri: `s3://${emu.bucket}/batch-input/`,
      s3OutputUri: `s3://${emu.bucket}/batch-output/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      batchTimeout: 1,
      pollInterval: 0.1,
    },
  })

  const summarize = async (topic: string): Promise<string> => {
    const out = await client.send(
      new ConverseStreamCommand({
        modelId: HAIKU,
        system: [{ text: 'Answer in two sentences.' }],
        messages: [{ role: 'user', content: [{ text: `Summarize the history of ${topic}.` }] }],
        inferenceConfig: { maxTokens: 200 },
      }),
    )
    let text = ''
    let stop: StopReason | undefined
    let tokens = 0
    for await (const event of out.stream) {
      if (event.contentBlockDelta) text += event.contentBlockDelta.delta.text ?? ''
      else if (event.messageStop) stop = event.messageStop.stopReason
      else if (event.metadata) tokens = event.metadata.usage.totalTokens
    }
    return `${topic} [${stop}, ${tokens} tokens]: ${text}`
  }

  const topics = ['the printing press', 'the telegraph', 'radio', 'the transistor', 'the web']
  for (const line of await Promise.all(topics.map(summarize))) console.log(line)
  console.log(`${client.stats().jobs.length} batch job(s), ${client.stats().sentDirect} on-demand`)
  await client.close()
  await emu.stop()
}

void main()
