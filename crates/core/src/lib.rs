//! The engine of bedrock-batch-bridge. It knows nothing of napi or JavaScript.
#![forbid(unsafe_code)]
