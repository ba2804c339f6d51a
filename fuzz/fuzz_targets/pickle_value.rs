#![no_main]
//! Drives `procwire_fuzz::pickle_value`; see that function for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::pickle_value(data));
