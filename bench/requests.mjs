// What the benches send: the model, and a 300-byte Claude body whose prompt is unique, built in the
// send loop as a real caller builds it (bench/scenario.mjs and bench/soak.mjs).
export const MODEL = 'anthropic.claude-3-haiku-20240307-v1:0'

const head = '{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"'
const tail = '"}]}'

/** The 300-byte body of question `i`. */
export function uniqueBody(i) {
  const prompt = `Question ${i}: `
  return head + prompt + 'x'.repeat(300 - head.length - tail.length - prompt.length) + tail
}
