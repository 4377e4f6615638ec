//! Fuzz target `converse_native`: see `bedrock_batch_core::fuzzing::converse_native`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::converse_native(data));
