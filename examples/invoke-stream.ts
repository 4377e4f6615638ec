// InvokeModelWithResponseStreamCommand with a Claude Messages body: each `chunk.bytes` is one of Claude's
// stream events as JSON text, and the `content_block_delta` events carry the text. Here with
// `batch.streaming: 'direct'`: the streams go on-demand and chunks arrive as the model writes them, while
// plain InvokeModel calls of the same client still batch. Without it, the same code gets the answer from a
// batch job, replayed as the same chunks. Runs against the built-in emulator.
import { BatchInferenceClient, InvokeModelWithResponseStreamCommand, startEmulator } from 'bedrock-batch-bridge'

const HAIKU = 'anthropic.claude-3-haiku-20240307-v1:0'

/** The parts of Claude's stream events read here. */
interface ClaudeStreamEvent {
  type: string
  delta?: { type?: string; text?: string; stop_reason?: string }
  'amazon-bedrock-invocationMetrics'?: { inputTokenCount: number; outputTokenCount: number; firstByteLatency: number }
}

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
      streaming: 'direct',
    },
  })

  const out = await client.send(
    new InvokeModelWithResponseStreamCommand({
      modelId: HAIKU,
      contentType: 'application/json',
      body: JSON.stringify({
        anthropic_version: 'bedrock-2023-05-31',
        max_tokens: 400,
        messages: [{ role: 'user', content: 'Write a short paragraph about lighthouses.' }],
      }),
    }),
  )
  const decoder = new TextDecoder()
  let text = ''
  let pieces = 0
  for await (const event of out.body) {
    if (!event.chunk) continue
    const e = JSON.parse(decoder.decode(event.chunk.bytes)) as ClaudeStreamEvent
    if (e.type === 'content_block_delta' && e.delta?.type === 'text_delta') {
      text += e.delta.text ?? ''
      pieces++
    } else if (e.type === 'message_delta') {
      console.log(`stop reason: ${e.delta?.stop_reason}`)
    } else if (e.type === 'message_stop') {
      const m = e['amazon-bedrock-invocationMetrics']
      if (m)
        console.log(
          `${m.inputTokenCount} input / ${m.outputTokenCount} output tokens, first byte after ${m.firstByteLatency} ms`,
        )
    }
  }
  console.log(`${pieces} text deltas, ${out.contentType}:\n${text}`)
  console.log(`${client.stats().sentDirect} request(s) sent on-demand`)
  await client.close()
  await emu.stop()
}

void main()
