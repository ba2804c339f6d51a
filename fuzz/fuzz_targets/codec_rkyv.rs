#![no_main]
//! Drives `procwire_fuzz::codec_rkyv`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::codec_rkyv(data));
