//! Fuzz target `event_frames`: see `bedrock_batch_core::fuzzing::event_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::event_frames(data));
