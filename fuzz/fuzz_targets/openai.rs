//! Fuzz target `openai`: see `bedrock_batch_core::fuzzing::openai`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::openai(data));
