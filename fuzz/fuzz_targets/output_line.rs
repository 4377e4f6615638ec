//! Fuzz target `output_line`: see `bedrock_batch_core::fuzzing::output_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::output_line(data));
