// The migration: change the import, keep the call sites. Runs against the built-in emulator.
import {
  BedrockRuntimeClient,
  InvokeModelCommand,
  type InvokeModelCommandOutput,
  startEmulator,
} from 'bedrock-batch-bridge'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'fast' })
  const client = new BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: {
      s3InputUri: `s3://${emu.bucket}/batch-input/`,
      s3OutputUri: `s3://${emu.bucket}/batch-output/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      maxBatchSize: 100,
      batchTimeout: 1,
      pollInterval: 0.1,
    },
  })
  const ask = async (question: string): Promise<string> => {
    const out: InvokeModelCommandOutput = await client.send(
      new InvokeModelCommand({
        modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
        contentType: 'application/json',
        body: JSON.stringify({
          anthropic_version: 'bedrock-2023-05-31',
          max_tokens: 256,
          messages: [{ role: 'user', content: question }],
        }),
      }),
    )
    const result = JSON.parse(new TextDecoder().decode(out.body)) as { content: { text: string }[] }
    return result.content[0].text
  }
  const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => ask(`What is ${i} + ${i}?`)))
  console.log(answers.slice(0, 3), client.stats().jobs.length, 'jobs')
  await client.close()
  await emu.stop()
}

void main()
