//! Fuzz target `input_line`: see `bedrock_batch_core::fuzzing::input_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::input_line(data));
