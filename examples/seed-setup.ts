// The Python SDK's style: an empty client, then setup(); and the same code in openai mode.
import { BatchInferenceClient, batchPlugin, type Stats } from 'bedrock-batch-bridge'

async function main(): Promise<void> {
  const client = new BatchInferenceClient()
  await client.setup({
    modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
    s3InputUri: 's3://my-bucket/batch-input/',
    s3OutputUri: 's3://my-bucket/batch-output/',
    roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
    region: 'us-west-2',
    minBatchSize: 100,
    maxBatchSize: 1000,
    batchTimeout: 60,
  })
  client.on('progress', (s: Stats) => console.log(`${s.queued} queued, ${s.inFlight} in flight, ${s.jobs.length} jobs`))
  const response = await client.invokeModel({
    body: JSON.stringify({
      anthropic_version: 'bedrock-2023-05-31',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Hello!' }],
    }),
    contentType: 'application/json',
  })
  console.log(JSON.parse(response.body.transformToString()).content[0].text)
  await client.close()

  const local = new BatchInferenceClient({
    mode: 'openai',
    openai: { model: 'hosted_vllm/Qwen/Qwen3-32B', apiBase: 'http://127.0.0.1:30000/v1' },
  })
  await local.close()

  const plugin = batchPlugin({
    batch: { s3InputUri: 's3://b/in/', s3OutputUri: 's3://b/out/', roleArn: 'arn:aws:iam::123456789012:role/R' },
  })
  await plugin.close()
}

void main()
