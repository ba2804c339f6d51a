#![no_main]
//! Drives `procwire_fuzz::auth_listener`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::auth_listener(data));
