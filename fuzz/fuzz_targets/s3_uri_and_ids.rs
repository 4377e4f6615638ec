//! Fuzz target `s3_uri_and_ids`: see `bedrock_batch_core::fuzzing::s3_uri_and_ids`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bedrock_batch_core::fuzzing::s3_uri_and_ids(data));
