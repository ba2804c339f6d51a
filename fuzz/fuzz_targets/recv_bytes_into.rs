#![no_main]
//! Drives `procwire_fuzz::recv_bytes_into`; see that function for what is checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| procwire_fuzz::recv_bytes_into(data));
