// What the benches send: the model, and a 300-byte Claude body whose prompt is unique, built in the
// send loop as a real caller builds it (bench/scenario.mjs and bench/soak.mjs); and how their
// clients batch it.
export const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0'

const head = '{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"'
const tail = '"}]}'

/** The 300-byte body of question `i`. */
export function uniqueBody(i) {
  const prompt = `Question ${i}: `
  return head + prompt + 'x'.repeat(300 - head.length - tail.length - prompt.length) + tail
}

/**
 * The `batch` options every bench client runs with on the emulator `emu` (its bucket), under key
 * prefix `prefix`: jobs of up to 50,000 records, twenty at once, polled every 0.1 s, cut by size or
 * a flush (`batchTimeout` otherwise).
 */
export function benchBatch(emu, prefix, batchTimeout = 3600) {
  return {
    s3InputUri: `s3://${emu.bucket}/${prefix}/in/`,
    s3OutputUri: `s3://${emu.bucket}/${prefix}/out/`,
    roleArn: 'arn:aws:iam::123456789012:role/BedrockBatch',
    maxBatchSize: 50_000,
    minBatchSize: 100,
    maxConcurrentJobs: 20,
    pollInterval: 0.1,
    batchTimeout,
  }
}
