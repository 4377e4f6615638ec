// The ESM entry: the same objects as the CommonJS entry (index.js), as named exports.
import bridge from './index.js'

export const {
  BatchInferenceClient,
  BedrockRuntimeClient,
  InvokeModelCommand,
  Uint8ArrayBlobAdapter,
  BedrockBatchBridgeException,
  BatchJobFailedException,
  RecordMissingException,
  ClientClosedException,
  JournalLockedException,
  JournalCorruptedException,
  ValidationException,
  AccessDeniedException,
  ResourceNotFoundException,
  ModelTimeoutException,
  ModelErrorException,
  ModelNotReadyException,
  ThrottlingException,
  ServiceQuotaExceededException,
  InternalServerException,
  ServiceUnavailableException,
  ConflictException,
  batchPlugin,
  startEmulator,
} = bridge

export default bridge
