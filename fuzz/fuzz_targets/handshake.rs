#![no_main]
//! Drives `procwire_fuzz::handshake`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::handshake(data));
