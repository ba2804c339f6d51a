#![no_main]
//! Drives `procwire_fuzz::codec_pickle`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::codec_pickle(data));
