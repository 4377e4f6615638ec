// ConverseCommand in batch mode: a system prompt, inference settings, and a tool-use round trip (the model
// asks for a tool, the next turn carries its result). Every turn of every conversation goes into a batch
// job; a conversation's next turn joins a later job. Runs against the built-in emulator.
import {
  BatchInferenceClient,
  type ContentBlock,
  ConverseCommand,
  type ConverseCommandInput,
  type ConverseCommandOutput,
  type Message,
  startEmulator,
  type ToolConfiguration,
} from 'bedrock-batch-bridge'

const HAIKU = 'anthropic.claude-3-haiku-20240307-v1:0'

const toolConfig: ToolConfiguration = {
  tools: [
    {
      toolSpec: {
        name: 'get_weather',
        description: 'The current weather in a city.',
        inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
      },
    },
  ],
}

/** Our side of the tool (the model only ever asks for it). */
function getWeather(input: unknown): { city: string; celsius: number; rainChance: number } {
  const city =
    typeof input === 'object' && input !== null && 'city' in input && typeof input.city === 'string'
      ? input.city
      : 'unknown'
  return { city, celsius: 8 + (city.length % 12), rainChance: (city.length * 17) % 100 }
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
      batchTimeout: 1,
      pollInterval: 0.1,
    },
  })

  // The same settings on every turn: a conversation with tool blocks in it must keep its toolConfig.
  const settings: Omit<ConverseCommandInput, 'messages'> = {
    modelId: HAIKU,
    system: [{ text: 'You are a terse travel assistant. Look the weather up before you answer.' }],
    inferenceConfig: { maxTokens: 300, temperature: 0.2 },
    toolConfig,
  }

  const advise = async (city: string): Promise<string> => {
    const messages: Message[] = [
      { role: 'user', content: [{ text: `Use get_weather to tell me: do I need an umbrella in ${city} today?` }] },
    ]
    let out: ConverseCommandOutput = await client.send(new ConverseCommand({ ...settings, messages }))
    for (let turn = 0; out.stopReason === 'tool_use' && turn < 4; turn++) {
      // Keep the model's turn (with its toolUse blocks), then answer each call in a user turn.
      messages.push(out.output.message)
      const results: ContentBlock[] = []
      for (const block of out.output.message.content) {
        if (block.toolUse)
          results.push({
            toolResult: { toolUseId: block.toolUse.toolUseId, content: [{ json: getWeather(block.toolUse.input) }] },
          })
      }
      messages.push({ role: 'user', content: results })
      out = await client.send(new ConverseCommand({ ...settings, messages }))
    }
    const text = out.output.message.content.map((b) => b.text ?? '').join('')
    return `${city}: ${text} (${out.usage.inputTokens} in / ${out.usage.outputTokens} out, ${out.stopReason})`
  }

  const cities = ['Lisbon', 'Oslo', 'Nairobi', 'Osaka', 'Quito', 'Perth']
  for (const line of await Promise.all(cities.map(advise))) console.log(line)
  console.log(`${client.stats().jobs.length} batch job(s)`)
  await client.close()
  await emu.stop()
}

void main()
