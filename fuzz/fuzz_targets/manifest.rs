//! Fuzz target `manifest`: see `bedrock_batch_core::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::manifest(data));
