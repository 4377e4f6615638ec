// Cancelling requests with an AbortSignal, as with the AWS SDK. Runs against the built-in emulator.
//
// Before its batch is uploaded, an aborted request leaves the batch: it is never sent or paid for.
// After the upload, Bedrock cannot cancel one record of a running job: the answer is discarded when
// the job ends. Either way the Promise rejects at once with `name: "AbortError"`.
import {
  BedrockRuntimeClient,
  InvokeModelCommand,
  type InvokeModelCommandOutput,
  startEmulator,
} from 'bedrock-batch-bridge'

const isAbort = (err: unknown): boolean => err instanceof Error && err.name === 'AbortError'

async function main(): Promise<void> {
  // 'realistic': each job stage takes seconds, so there is time to abort after the upload.
  const emu = await startEmulator({ profile: 'realistic' })
  const client = new BedrockRuntimeClient({
    region: emu.region,
    credentials: emu.credentials,
    endpoints: emu.endpoints,
    batch: {
      s3InputUri: `s3://${emu.bucket}/batch-input/`,
      s3OutputUri: `s3://${emu.bucket}/batch-output/`,
      roleArn: 'arn:aws:iam::123456789012:role/BedrockBatchRole',
      batchTimeout: 60,
      pollInterval: 1,
    },
  })
  const ask = (question: string, abortSignal?: AbortSignal): Promise<InvokeModelCommandOutput> =>
    client.send(
      new InvokeModelCommand({
        modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
        contentType: 'application/json',
        body: JSON.stringify({
          anthropic_version: 'bedrock-2023-05-31',
          max_tokens: 256,
          messages: [{ role: 'user', content: question }],
        }),
      }),
      { abortSignal },
    )

  // 1. Before the upload: the request waits in its queue (batchTimeout is 60 s); aborting takes it out.
  const changedMyMind = new AbortController()
  const dropped = ask('A question I take back', changedMyMind.signal)
  changedMyMind.abort()
  await dropped.catch((err: unknown) => console.log(isAbort(err) ? 'aborted before the upload: not in the batch' : err))

  // 2. After the upload: a deadline of 3 s on one request of a job that runs longer.
  const kept = ask('What is 2 + 2?')
  const hurried = ask('What is 3 + 3?', AbortSignal.timeout(3000))
  await client.flush() // upload now instead of after batchTimeout
  const started = Date.now()
  await hurried.catch((err: unknown) =>
    console.log(isAbort(err) ? `aborted after the upload, ${Date.now() - started} ms later: answer discarded` : err),
  )
  // The other records of the job are not affected.
  console.log(JSON.parse((await kept).body.transformToString()).content[0].text)

  await client.close()
  await emu.stop()
}

void main()
