// A library that signs its own Bedrock calls and takes a custom `fetch` (the Vercel AI SDK's
// Bedrock provider, Anthropic's Bedrock SDK): batchFetch turns its runtime calls into batch
// records. Here plain `fetch` calls stand in for the library. Runs against the built-in emulator.
import { batchFetch, startEmulator } from 'bedrock-batch-bridge'

async function main(): Promise<void> {
  const emu = await startEmulator({ profile: 'fast' })
  const fetch = batchFetch({
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
  // With a library: createAmazonBedrock({ region, fetch }) or new AnthropicBedrock({ awsRegion, fetch }).
  const modelId = encodeURIComponent('anthropic.claude-3-haiku-20240307-v1:0')
  const url = `https://bedrock-runtime.${emu.region}.amazonaws.com/model/${modelId}/converse`
  const answers = await Promise.all(
    ['red', 'green', 'blue'].map(async (colour) => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: `Name a thing that is ${colour}.` }] }] }),
      })
      return res.json()
    }),
  )
  for (const a of answers) console.log(a.output.message.content[0].text)
  console.log(`${fetch.stats().jobs.length} batch job(s)`)
  await fetch.close()
  await emu.stop()
}

void main()
