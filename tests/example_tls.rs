//! `examples/tls.rs` run as `main` runs it: a CA-trusting client and a pinning client are
//! both served over TLS with an HMAC key (the example asserts the answers).
#![cfg(feature = "tls")]

#[path = "../examples/tls.rs"]
mod example;

#[test]
fn the_tls_example_serves_a_trusting_and_a_pinning_client() {
    example::main().unwrap();
}
