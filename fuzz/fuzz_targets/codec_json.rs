#![no_main]
//! Drives `procwire_fuzz::codec_json`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::codec_json(data));
