//! The frame decoder alone: pieces of any size, hostile headers, ends of stream.

use super::*;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Header::for_payload(payload.len() as u64).encode().to_vec();
    out.extend_from_slice(payload);
    out
}

fn drain(d: &mut FrameDecoder) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        out.push(m.to_vec());
    }
    out
}

#[test]
fn messages_fed_one_byte_at_a_time_come_out_whole_and_in_order() {
    let msgs: [&[u8]; 4] = [b"", b"hello", &[7; 300], b"x"];
    let wire: Vec<u8> = msgs.iter().flat_map(|m| frame(m)).collect();
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    for b in &wire {
        d.extend_from_slice(&[*b]);
        got.extend(drain(&mut d));
    }
    assert_eq!(got, msgs.map(<[u8]>::to_vec));
    assert!(matches!(d.end_of_stream(), Error::Disconnected));
}

#[test]
fn a_frame_larger_than_the_buffer_grows_it_and_arrives_whole() {
    let big = vec![0xab; READ_BUF * 3 + 5];
    let mut d = FrameDecoder::new();
    let wire = frame(&big);
    for piece in wire.chunks(4096) {
        let room = d.read_buf();
        assert!(!room.is_empty());
        room[..piece.len()].copy_from_slice(piece);
        d.advance(piece.len());
    }
    assert_eq!(d.next_message().unwrap(), Some(&big[..]));
    d.release_grown();
    assert_eq!(d.capacity(), READ_BUF);
}

#[test]
fn a_header_over_the_limit_stops_the_decoder_for_good() {
    let mut d = FrameDecoder::new();
    d.set_max_message_size(4);
    d.extend_from_slice(&frame(b"12345"));
    let err = d.next_message().unwrap_err();
    assert!(err
        .to_string()
        .starts_with("message of 5 bytes exceeds the receiver's 4-byte limit (raise it"));
    d.extend_from_slice(&frame(b"ok"));
    assert!(matches!(d.next_message(), Err(Error::Protocol(_))));
    assert!(matches!(d.end_of_stream(), Error::Protocol(_)));
}

#[test]
fn a_lying_header_sizes_the_buffer_by_what_arrives_not_by_what_it_claims() {
    let mut d = FrameDecoder::new();
    d.set_max_message_size(u64::MAX);
    d.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]); // 4 GiB
    assert_eq!(d.read_buf().len(), EAGER_ALLOC - 12);
    assert_eq!(d.capacity(), EAGER_ALLOC);
    assert_eq!(d.next_message().unwrap(), None);
}

#[test]
fn a_negative_length_is_a_protocol_error() {
    let mut d = FrameDecoder::new();
    d.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
    assert!(matches!(d.next_message(), Err(Error::Protocol(_))));
}

#[test]
fn the_end_inside_a_frame_is_a_sticky_truncation_with_exact_counts() {
    let mut d = FrameDecoder::new();
    d.extend_from_slice(&frame(b"hello")[..7]);
    let e = d.end_of_stream();
    assert!(
        matches!(
            e,
            Error::Truncated {
                received: 7,
                expected: 9
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        d.next_message(),
        Err(Error::Truncated {
            received: 7,
            expected: 9
        })
    ));
    let mut d = FrameDecoder::new();
    d.extend_from_slice(&[0, 0]);
    assert!(matches!(
        d.end_of_stream(),
        Error::Truncated {
            received: 2,
            expected: 4
        }
    ));
    let mut d = FrameDecoder::new();
    d.extend_from_slice(&[0xff; 6]);
    assert!(matches!(
        d.end_of_stream(),
        Error::Truncated {
            received: 6,
            expected: 12
        }
    ));
}

#[test]
fn extending_past_a_buffer_full_of_untaken_messages_keeps_every_byte() {
    let one = frame(&[1; 100]);
    let wire: Vec<u8> = std::iter::repeat_n(one.clone(), READ_BUF / 100 + 10)
        .flatten()
        .collect();
    let mut d = FrameDecoder::new();
    d.extend_from_slice(&wire);
    let got = drain(&mut d);
    assert_eq!(got.len(), READ_BUF / 100 + 10);
    assert!(got.iter().all(|m| m == &[1; 100]));
}
