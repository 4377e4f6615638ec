'use strict'
// OpenAI Chat Completions onto Bedrock's Converse: a `POST /v1/chat/completions` body as a
// Converse (or ConverseStream) request body, and the Converse answer as OpenAI's `chat.completion`
// object, or its stream events as `chat.completion.chunk` objects. The mapping is in
// docs/wires.md. Pure functions: no I/O.

const { invalid } = require('./errors.js')

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** Members of a request that change nothing here (they are accepted and left out). */
const IGNORED = new Set([
  'user',
  'metadata',
  'store',
  'seed',
  'frequency_penalty',
  'presence_penalty',
  'parallel_tool_calls',
  'logit_bias',
  'prompt_cache_key',
  'prompt_cache_retention',
  'prompt_cache_options',
  'safety_identifier',
  'reasoning_effort',
  'verbosity',
])

const IMAGE_FORMATS = { png: 'png', jpeg: 'jpeg', jpg: 'jpeg', gif: 'gif', webp: 'webp' }

/** A message's text content (a string, or text parts) as Converse text blocks. */
function textBlocks(content, where) {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }]
  if (content === null || content === undefined) return []
  if (!Array.isArray(content)) throw invalid(where, `${where} must be a string or an array of content parts.`)
  return content.map((part, j) => {
    if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string')
      throw invalid(`${where}[${j}]`, `${where}[${j}] must be a text part ({ "type": "text", "text": ... }) here.`)
    return { text: part.text }
  })
}

/** An image part's data URL as a Converse image block. */
function imageBlock(part, where) {
  const url = isObject(part.image_url) ? part.image_url.url : undefined
  if (typeof url !== 'string') throw invalid(`${where}.image_url.url`, `${where}.image_url.url must be a string.`)
  const m = /^data:image\/([a-z]+);base64,(.*)$/is.exec(url)
  if (!m)
    throw invalid(
      `${where}.image_url.url`,
      `${where}.image_url.url must be a data URL (data:image/png;base64,...): Bedrock takes image bytes, not links.`,
    )
  const format = IMAGE_FORMATS[m[1].toLowerCase()]
  if (!format)
    throw invalid(`${where}.image_url.url`, `${where}.image_url.url: image/${m[1]} is not one of png, jpeg, gif, webp.`)
  return { image: { format, source: { bytes: m[2].replace(/\s+/g, '') } } }
}

/** A user message's content (text and image parts) as Converse blocks. */
function userBlocks(content, where) {
  if (typeof content === 'string') return [{ text: content }]
  if (!Array.isArray(content)) throw invalid(where, `${where} must be a string or an array of content parts.`)
  return content.map((part, j) => {
    const at = `${where}[${j}]`
    if (!isObject(part)) throw invalid(at, `${at} must be a content part object.`)
    if (part.type === 'text') {
      if (typeof part.text !== 'string') throw invalid(`${at}.text`, `${at}.text must be a string.`)
      return { text: part.text }
    }
    if (part.type === 'image_url') return imageBlock(part, at)
    throw invalid(`${at}.type`, `${at}.type ${JSON.stringify(part.type)} is not supported (text and image_url are).`)
  })
}

/** An assistant message's tool calls as Converse toolUse blocks. */
function toolUseBlocks(calls, where) {
  if (!Array.isArray(calls)) throw invalid(where, `${where} must be an array.`)
  return calls.map((c, j) => {
    const at = `${where}[${j}]`
    if (!isObject(c) || !isObject(c.function) || typeof c.function.name !== 'string' || typeof c.id !== 'string')
      throw invalid(at, `${at} must be { id, type: "function", function: { name, arguments } }.`)
    let input = {}
    const args = c.function.arguments
    if (typeof args === 'string' && args.trim() !== '') {
      try {
        input = JSON.parse(args)
      } catch {
        throw invalid(`${at}.function.arguments`, `${at}.function.arguments is not JSON text.`)
      }
    }
    return { toolUse: { toolUseId: c.id, name: c.function.name, input } }
  })
}

/** A tool message's content as a Converse toolResult block. */
function toolResultBlock(m, where) {
  if (typeof m.tool_call_id !== 'string')
    throw invalid(`${where}.tool_call_id`, `${where}.tool_call_id must be the id of the tool call it answers.`)
  const content = textBlocks(m.content, `${where}.content`)
  return { toolResult: { toolUseId: m.tool_call_id, content: content.length ? content : [{ text: '' }] } }
}

/** The messages as Converse's `system` and `messages` (consecutive turns of one role merged, as Converse alternates). */
function converseMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0)
    throw invalid('messages', 'messages must be a non-empty array.')
  const system = []
  const out = []
  const push = (role, blocks) => {
    if (blocks.length === 0) return
    const last = out[out.length - 1]
    if (last && last.role === role) last.content.push(...blocks)
    else out.push({ role, content: blocks })
  }
  messages.forEach((m, i) => {
    const where = `messages[${i}]`
    if (!isObject(m)) throw invalid(where, `${where} must be an object.`)
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...textBlocks(m.content, `${where}.content`))
        break
      case 'user':
        push('user', userBlocks(m.content, `${where}.content`))
        break
      case 'assistant': {
        const blocks = textBlocks(m.content, `${where}.content`)
        if (m.tool_calls != null) blocks.push(...toolUseBlocks(m.tool_calls, `${where}.tool_calls`))
        if (blocks.length === 0) throw invalid(where, `${where} has neither content nor tool_calls.`)
        push('assistant', blocks)
        break
      }
      case 'tool':
        push('user', [toolResultBlock(m, where)])
        break
      default:
        throw invalid(
          `${where}.role`,
          `${where}.role ${JSON.stringify(m.role)} is not supported (system, developer, user, assistant and tool are).`,
        )
    }
  })
  return { system, messages: out }
}

/** `tools` and `tool_choice` as Converse's `toolConfig` (undefined when there are none, or the choice is `none`). */
function toolConfig(tools, choice) {
  if (tools === undefined || tools === null) {
    if (choice !== undefined && choice !== null && choice !== 'none' && choice !== 'auto')
      throw invalid('tool_choice', 'tool_choice needs tools.')
    return undefined
  }
  if (!Array.isArray(tools)) throw invalid('tools', 'tools must be an array.')
  if (tools.length === 0) return undefined
  const specs = tools.map((tool, i) => {
    const at = `tools[${i}]`
    if (!isObject(tool) || tool.type !== 'function' || !isObject(tool.function))
      throw invalid(at, `${at} must be { type: "function", function: { name, description?, parameters? } }.`)
    const f = tool.function
    if (typeof f.name !== 'string' || f.name === '')
      throw invalid(`${at}.function.name`, `${at}.function.name is required.`)
    const spec = {
      name: f.name,
      inputSchema: { json: isObject(f.parameters) ? f.parameters : { type: 'object', properties: {} } },
    }
    if (typeof f.description === 'string' && f.description !== '') spec.description = f.description
    return { toolSpec: spec }
  })
  if (choice === 'none') return undefined
  const config = { tools: specs }
  if (choice === undefined || choice === null || choice === 'auto') config.toolChoice = { auto: {} }
  else if (choice === 'required') config.toolChoice = { any: {} }
  else if (isObject(choice) && choice.type === 'function' && typeof choice.function?.name === 'string')
    config.toolChoice = { tool: { name: choice.function.name } }
  else
    throw invalid(
      'tool_choice',
      'tool_choice must be "auto", "required", "none" or { type: "function", function: { name } }.',
    )
  return config
}

/** `response_format` as Converse's `outputConfig` (undefined for text). */
function outputConfig(format) {
  if (format === undefined || format === null) return undefined
  if (!isObject(format)) throw invalid('response_format', 'response_format must be an object.')
  if (format.type === 'text') return undefined
  if (format.type === 'json_schema') {
    const s = format.json_schema
    if (!isObject(s) || !isObject(s.schema))
      throw invalid(
        'response_format.json_schema.schema',
        'response_format.json_schema.schema must be a JSON schema object.',
      )
    const jsonSchema = { schema: JSON.stringify(s.schema) }
    if (typeof s.name === 'string') jsonSchema.name = s.name
    if (typeof s.description === 'string') jsonSchema.description = s.description
    return { textFormat: { type: 'json_schema', structure: { jsonSchema } } }
  }
  if (format.type === 'json_object')
    throw invalid(
      'response_format',
      'response_format json_object has no Bedrock equivalent: give { type: "json_schema", json_schema: { name, schema } } (Converse structured output).',
    )
  throw invalid(
    'response_format',
    `response_format.type ${JSON.stringify(format.type)} is not text, json_schema or json_object.`,
  )
}

function number(body, name, { min, max, integer = false } = {}) {
  const v = body[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max)
    throw invalid(name, `${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}.`)
  return v
}

/**
 * A Chat Completions request body (parsed JSON) as `{ model, stream, includeUsage, converse }`:
 * `converse` the Converse request body (without `modelId`). A WireError (400) names the member
 * at fault.
 */
function chatRequest(body) {
  if (!isObject(body)) throw invalid(null, 'The request body must be a JSON object.')
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model', 'model is required.')
  if (body.n !== undefined && body.n !== null && body.n !== 1)
    throw invalid(
      'n',
      'n must be 1: each Bedrock record gives one answer. Send n requests instead, each with its own seed (identical requests are taken as retries of one call).',
    )
  if (body.logprobs === true || body.top_logprobs != null)
    throw invalid(body.logprobs === true ? 'logprobs' : 'top_logprobs', 'Bedrock does not return log probabilities.')
  if (body.audio != null || (Array.isArray(body.modalities) && body.modalities.some((m) => m !== 'text')))
    throw invalid(body.audio != null ? 'audio' : 'modalities', 'Only text output is supported.')
  if (body.functions != null || body.function_call != null)
    throw invalid(body.functions != null ? 'functions' : 'function_call', 'functions are deprecated: use tools.')
  const { system, messages } = converseMessages(body.messages)
  const converse = { messages }
  if (system.length) converse.system = system
  const inference = {}
  const maxTokens =
    number(body, 'max_completion_tokens', { min: 1, max: 2 ** 31 - 1, integer: true }) ??
    number(body, 'max_tokens', { min: 1, max: 2 ** 31 - 1, integer: true })
  if (maxTokens !== undefined) inference.maxTokens = maxTokens
  const temperature = number(body, 'temperature', { min: 0, max: 2 })
  if (temperature !== undefined) inference.temperature = temperature
  const topP = number(body, 'top_p', { min: 0, max: 1 })
  if (topP !== undefined) inference.topP = topP
  if (body.stop !== undefined && body.stop !== null) {
    const stop = typeof body.stop === 'string' ? [body.stop] : body.stop
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string'))
      throw invalid('stop', 'stop must be a string or an array of strings.')
    if (stop.length) inference.stopSequences = stop
  }
  if (Object.keys(inference).length) converse.inferenceConfig = inference
  const tools = toolConfig(body.tools, body.tool_choice)
  if (tools) converse.toolConfig = tools
  const output = outputConfig(body.response_format)
  if (output) converse.outputConfig = output
  const tier = body.service_tier
  if (tier === 'flex') converse.serviceTier = { type: 'flex' }
  else if (tier !== undefined && tier !== null && tier !== 'auto' && tier !== 'default')
    throw invalid('service_tier', 'service_tier must be "auto", "default" or "flex".')
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean')
    throw invalid('stream', 'stream must be true or false.')
  const stream = body.stream === true
  if (body.stream_options != null && !isObject(body.stream_options))
    throw invalid('stream_options', 'stream_options must be an object.')
  for (const k of Object.keys(body)) {
    if (
      ![
        'model',
        'messages',
        'n',
        'logprobs',
        'top_logprobs',
        'audio',
        'modalities',
        'functions',
        'function_call',
        'max_completion_tokens',
        'max_tokens',
        'temperature',
        'top_p',
        'stop',
        'tools',
        'tool_choice',
        'response_format',
        'service_tier',
        'stream',
        'stream_options',
      ].includes(k) &&
      !IGNORED.has(k)
    )
      throw invalid(k, `${k} is not supported by this server's Chat Completions.`)
  }
  return { model: body.model, stream, includeUsage: stream && body.stream_options?.include_usage === true, converse }
}

const FINISH = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  content_filtered: 'content_filter',
  guardrail_intervened: 'content_filter',
}

/** OpenAI's finish_reason of a Converse stopReason. */
function finishReason(stopReason) {
  return FINISH[stopReason] ?? 'stop'
}

/** OpenAI's usage of Converse's. */
function usageOf(u) {
  const prompt = Number.isInteger(u?.inputTokens) ? u.inputTokens : 0
  const completion = Number.isInteger(u?.outputTokens) ? u.outputTokens : 0
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

/** The `chat.completion` object of a Converse answer (`answer`: its parsed JSON). */
function chatCompletion(answer, { id, created, model, serviceTier }) {
  const blocks = answer?.output?.message?.content ?? []
  let text = ''
  const toolCalls = []
  for (const b of blocks) {
    if (typeof b.text === 'string') text += b.text
    else if (b.toolUse)
      toolCalls.push({
        id: b.toolUse.toolUseId,
        type: 'function',
        function: { name: b.toolUse.name, arguments: JSON.stringify(b.toolUse.input ?? {}) },
      })
  }
  const message = { role: 'assistant', content: text === '' && toolCalls.length ? null : text, refusal: null }
  if (toolCalls.length) message.tool_calls = toolCalls
  const out = {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(answer?.stopReason) }],
    usage: usageOf(answer?.usage),
  }
  if (serviceTier) out.service_tier = serviceTier
  return out
}

/**
 * The chunks of a ConverseStream answer, event by event: `chunks(events)` gives the
 * `chat.completion.chunk` objects of one array of wire events (`{ "<eventType>": payload }`);
 * `tail()` those still owed at the end (the usage chunk when asked for).
 */
function chunker({ id, created, model, includeUsage }) {
  const base = () => ({ id, object: 'chat.completion.chunk', created, model })
  const chunk = (delta, finish = null) => ({
    ...base(),
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  })
  // Converse content block index → OpenAI tool call index.
  const toolIndex = new Map()
  let usage = null
  let roleSent = false
  const chunks = (events) => {
    const out = []
    for (const e of events) {
      const [type] = Object.keys(e)
      const p = e[type] ?? {}
      if (type === 'messageStart') {
        roleSent = true
        out.push(chunk({ role: 'assistant', content: '', refusal: null }))
      } else if (type === 'contentBlockStart' && p.start?.toolUse) {
        const index = toolIndex.size
        toolIndex.set(p.contentBlockIndex, index)
        out.push(
          chunk({
            tool_calls: [
              {
                index,
                id: p.start.toolUse.toolUseId,
                type: 'function',
                function: { name: p.start.toolUse.name, arguments: '' },
              },
            ],
          }),
        )
      } else if (type === 'contentBlockDelta') {
        if (!roleSent) {
          roleSent = true
          out.push(chunk({ role: 'assistant', content: '', refusal: null }))
        }
        if (typeof p.delta?.text === 'string') out.push(chunk({ content: p.delta.text }))
        else if (p.delta?.toolUse && toolIndex.has(p.contentBlockIndex))
          out.push(
            chunk({
              tool_calls: [
                { index: toolIndex.get(p.contentBlockIndex), function: { arguments: p.delta.toolUse.input ?? '' } },
              ],
            }),
          )
      } else if (type === 'messageStop') {
        out.push(chunk({}, finishReason(p.stopReason)))
      } else if (type === 'metadata') {
        usage = usageOf(p.usage)
      }
    }
    return out
  }
  const tail = () => (includeUsage ? [{ ...base(), choices: [], usage: usage ?? usageOf(null) }] : [])
  return { chunks, tail }
}

module.exports = { chatRequest, chatCompletion, chunker, finishReason, usageOf, converseMessages }
