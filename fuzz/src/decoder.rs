//! The target over the pure frame decoder: no sockets, only bytes in and messages out.

use procwire::frame::FrameDecoder;
use procwire::Error;

use crate::peer::parse;
use crate::{Knobs, Rng};

/// [`FrameDecoder`] fed an arbitrary byte stream in arbitrary pieces.
///
/// Input: the knob layout of `frame_reader` (maximum message size from 0 to 64 KiB, a mode
/// byte, the largest piece, a seed for piece lengths), then the stream. Pieces go in
/// through `read_buf` + `advance` or through `extend_from_slice` (chosen by the seed);
/// after each piece every whole message is taken out. After the last piece the stream
/// ends.
///
/// Checks: the messages and the final error equal what the reference parser finds in the
/// stream; a message never comes out before its last byte went in; an error is sticky
/// (every later call reports it again); the buffer never holds more than was fed and not
/// taken.
pub fn frame_decoder(data: &[u8]) {
    let mut knobs = Knobs::new(data);
    let max = knobs.pick(&[0u64, 1, 5, 64, 300, 4096, 65536]);
    let _mode = knobs.byte();
    let max_piece = knobs.pick(&[1usize, 2, 3, 7, 64, 4096]);
    let mut rng = Rng::new(u64::from(knobs.u16()));
    let stream = knobs.rest();

    let mut decoder = FrameDecoder::new();
    decoder.set_max_message_size(max);
    let (expected, end) = parse(stream, max);
    let ends = frame_ends(stream, &expected);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    let mut failed = None;
    while at < stream.len() && failed.is_none() {
        let n = (1 + rng.below(max_piece)).min(stream.len() - at);
        at += feed(&mut decoder, &stream[at..at + n], rng.below(2) == 0);
        failed = drain(&mut decoder, &mut got, at, &ends);
        assert!(decoder.buffered_len() <= at, "more buffered than fed");
    }
    let last = failed.unwrap_or_else(|| decoder.end_of_stream());
    assert_eq!(
        got.len(),
        expected.len(),
        "messages: {got:?} vs {expected:?}"
    );
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.as_slice(), *e);
    }
    assert!(
        end.matches(&last),
        "ended with {last:?}, reference says {end:?}"
    );
    assert_sticky(&mut decoder, &last);
}

/// Feeds `piece` through `read_buf` + `advance` (as an I/O driver does) or through
/// `extend_from_slice`; returns how many bytes went in (all of them).
fn feed(decoder: &mut FrameDecoder, mut piece: &[u8], by_read_buf: bool) -> usize {
    let len = piece.len();
    if !by_read_buf {
        decoder.extend_from_slice(piece);
        return len;
    }
    while !piece.is_empty() {
        let room = decoder.read_buf();
        assert!(
            !room.is_empty(),
            "no room although every whole message was taken"
        );
        let n = room.len().min(piece.len());
        room[..n].copy_from_slice(&piece[..n]);
        decoder.advance(n);
        piece = &piece[n..];
    }
    len
}

/// Where each of the reference's messages ends in the stream (header and payload).
fn frame_ends(stream: &[u8], messages: &[&[u8]]) -> Vec<usize> {
    let mut at = 0;
    messages
        .iter()
        .map(|m| {
            let header = if stream[at..].starts_with(&[0xff; 4]) {
                12
            } else {
                4
            };
            at += header + m.len();
            at
        })
        .collect()
}

/// Takes every whole message out, checking that none comes before its last byte was
/// fed; the error that stopped the decoder, if one did.
fn drain(
    decoder: &mut FrameDecoder,
    got: &mut Vec<Vec<u8>>,
    fed: usize,
    ends: &[usize],
) -> Option<Error> {
    loop {
        match decoder.next_message() {
            Ok(Some(m)) => {
                let Some(&end) = ends.get(got.len()) else {
                    panic!("a message the reference does not have: {m:?}");
                };
                assert!(
                    end <= fed,
                    "message {} out at byte {fed}, ends at {end}",
                    got.len()
                );
                got.push(m.to_vec());
            }
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// After `last`, every call fails again: a truncation with the same counts, a refused
/// header as a protocol error.
fn assert_sticky(decoder: &mut FrameDecoder, last: &Error) {
    if matches!(last, Error::Disconnected) {
        assert!(matches!(decoder.next_message(), Ok(None)));
        return;
    }
    for again in [
        decoder.next_message().map(|_| ()),
        Err(decoder.end_of_stream()),
    ] {
        let e = again.expect_err("an error is sticky");
        match (last, &e) {
            (Error::Truncated { .. }, Error::Truncated { .. }) => {
                assert_eq!(format!("{last:?}"), format!("{e:?}"));
            }
            (Error::MessageTooLarge { .. } | Error::Protocol(_), Error::Protocol(_)) => {}
            _ => panic!("after {last:?}, {e:?}"),
        }
    }
}
