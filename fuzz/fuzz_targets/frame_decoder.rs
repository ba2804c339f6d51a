#![no_main]
//! Drives `procwire_fuzz::frame_decoder`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::frame_decoder(data));
