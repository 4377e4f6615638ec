// The ESM entry: the same objects as the CommonJS entry (index.js), as named exports.
// Written by scripts/esm-entry.js from index.js's exports (npm run build); do not edit.
import bridge from './index.js'

export const {
  BatchInferenceClient,
  BedrockRuntimeClient,
  InvokeModelCommand,
  InvokeModelWithResponseStreamCommand,
  ConverseCommand,
  ConverseStreamCommand,
  Uint8ArrayBlobAdapter,
  BedrockBatchBridgeException,
  ValidationException,
  AccessDeniedException,
  ResourceNotFoundException,
  ModelTimeoutException,
  ModelErrorException,
  ModelStreamErrorException,
  ModelNotReadyException,
  ThrottlingException,
  ServiceQuotaExceededException,
  InternalServerException,
  ServiceUnavailableException,
  ConflictException,
  BatchJobFailedException,
  RecordMissingException,
  ClientClosedException,
  CredentialsProviderError,
  JournalLockedException,
  JournalCorruptedException,
  StoreUnavailableException,
  EmulatorStartException,
  CostLimitExceededException,
  DryRunException,
  UnknownError,
  batchPlugin,
  batchFetch,
  startEmulator,
} = bridge

export default bridge
