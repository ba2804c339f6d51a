//! Handshake messages without I/O: building challenges, answering them, checking replies
//! and verdicts, for every digest this build speaks.
//!
//! Everything here is a pure function of its arguments; [`Handshake`](super::Handshake)
//! sequences them, and `auth/tests.rs` checks them against CPython's test vectors.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

use crate::error::{Error, Result};

/// The prefix of a challenge message.
pub(super) const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The verdict for a correct reply.
pub(super) const WELCOME: &[u8] = b"#WELCOME#";
/// The verdict for a wrong reply.
pub(super) const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge this side delivers (CPython 3.12+).
pub(super) const NONCE_LEN: usize = 40;
/// The digest this side offers.
const OFFERED: Digest = Digest::Sha256;
/// Length of a legacy challenge body (CPython 3.11 and earlier).
const LEGACY_CHALLENGE_LEN: usize = 20;
/// Length of a legacy reply: a raw HMAC-MD5.
const LEGACY_REPLY_LEN: usize = 16;
/// The longest digest name between the braces of `{name}`.
const MAX_DIGEST_NAME: usize = 8;

/// The digests this build can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Digest {
    Sha256,
    Sha384,
    #[cfg(feature = "legacy-md5")]
    Md5,
}

/// An HMAC of `msg` under `key`, ready to finalize or verify.
fn keyed<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> M {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac
}

impl Digest {
    /// The name CPython uses between the braces.
    fn name(self) -> &'static str {
        match self {
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => "md5",
        }
    }

    /// Looks up the digest named between braces, saying why a name is refused.
    fn from_name(name: &[u8]) -> Result<Digest> {
        match name {
            b"sha256" => Ok(Digest::Sha256),
            b"sha384" => Ok(Digest::Sha384),
            #[cfg(feature = "legacy-md5")]
            b"md5" => Ok(Digest::Md5),
            #[cfg(not(feature = "legacy-md5"))]
            b"md5" => Err(legacy("names the md5 digest")),
            b"sha3_256" | b"sha3_384" => Err(failed(format!(
                "the peer uses the {} digest, which procwire does not implement \
                 (it accepts sha256 and sha384)",
                name.escape_ascii()
            ))),
            _ => Err(failed(format!(
                "the peer uses an unsupported digest {{{}}}",
                name.escape_ascii()
            ))),
        }
    }

    /// Bytes in this digest's MAC.
    fn output_len(self) -> usize {
        match self {
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => 16,
        }
    }

    /// HMAC-this(key, msg).
    fn mac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        match self {
            Digest::Sha256 => keyed::<Hmac<Sha256>>(key, msg)
                .finalize()
                .into_bytes()
                .to_vec(),
            Digest::Sha384 => keyed::<Hmac<Sha384>>(key, msg)
                .finalize()
                .into_bytes()
                .to_vec(),
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => keyed::<Hmac<md5::Md5>>(key, msg)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `tag` is HMAC-this(key, msg), compared in constant time.
    fn verify(self, key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
        match self {
            Digest::Sha256 => keyed::<Hmac<Sha256>>(key, msg).verify_slice(tag).is_ok(),
            Digest::Sha384 => keyed::<Hmac<Sha384>>(key, msg).verify_slice(tag).is_ok(),
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => keyed::<Hmac<md5::Md5>>(key, msg).verify_slice(tag).is_ok(),
        }
    }
}

/// An [`Error::AuthenticationFailed`] with `why`.
pub(super) fn failed(why: impl Into<String>) -> Error {
    Error::AuthenticationFailed(why.into())
}

/// The error for a peer that speaks the legacy protocol (it `what`) in a build without it.
#[cfg(not(feature = "legacy-md5"))]
fn legacy(what: &str) -> Error {
    failed(format!(
        "the peer {what}: it uses the legacy HMAC-MD5 protocol of CPython 3.11 and earlier, \
         which needs procwire's `legacy-md5` cargo feature"
    ))
}

/// The digest of a legacy (unprefixed) message, which the peer `what`.
#[cfg(feature = "legacy-md5")]
fn legacy_digest(_what: &str) -> Result<Digest> {
    Ok(Digest::Md5)
}

/// The digest of a legacy (unprefixed) message, which the peer `what`.
#[cfg(not(feature = "legacy-md5"))]
fn legacy_digest(what: &str) -> Result<Digest> {
    Err(legacy(what))
}

/// The challenge message this side delivers: `#CHALLENGE#{sha256}` + `nonce`.
pub(super) fn challenge_message(nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let name = OFFERED.name().as_bytes();
    let mut msg = Vec::with_capacity(CHALLENGE.len() + name.len() + 2 + NONCE_LEN);
    msg.extend_from_slice(CHALLENGE);
    msg.push(b'{');
    msg.extend_from_slice(name);
    msg.push(b'}');
    msg.extend_from_slice(nonce);
    msg
}

/// Splits `{name}payload` into the digest and the payload.
pub(super) fn split_digest(msg: &[u8]) -> Result<(Digest, &[u8])> {
    let rest = msg.strip_prefix(b"{").ok_or_else(|| {
        failed(format!(
            "the peer sent a {}-byte handshake message without a {{digest}} prefix",
            msg.len()
        ))
    })?;
    let end = rest
        .iter()
        .take(MAX_DIGEST_NAME + 1)
        .position(|&b| b == b'}')
        .ok_or_else(|| failed("the peer sent a {digest} prefix with no closing brace"))?;
    Ok((Digest::from_name(&rest[..end])?, &rest[end + 1..]))
}

/// The reply to the challenge message `challenge`: `{name}` + HMAC-name(key, body), or
/// the raw HMAC-MD5 of a legacy 20-byte body.
pub(super) fn reply_to(key: &[u8], challenge: &[u8]) -> Result<Vec<u8>> {
    let body = challenge.strip_prefix(CHALLENGE).ok_or_else(|| {
        failed(format!(
            "expected a challenge, got a {}-byte message without the #CHALLENGE# prefix",
            challenge.len()
        ))
    })?;
    if body.len() < LEGACY_CHALLENGE_LEN {
        return Err(failed(format!(
            "the peer's challenge of {} bytes is too short",
            body.len()
        )));
    }
    if body.len() == LEGACY_CHALLENGE_LEN {
        return Ok(legacy_digest("sent a 20-byte challenge")?.mac(key, body));
    }
    let (digest, _) = split_digest(body)?;
    let mut reply = format!("{{{}}}", digest.name()).into_bytes();
    reply.extend_from_slice(&digest.mac(key, body));
    Ok(reply)
}

/// Checks `reply` against the challenge `body` this side sent (everything after
/// `#CHALLENGE#`).
pub(super) fn verify_reply(key: &[u8], body: &[u8], reply: &[u8]) -> Result<()> {
    let (digest, tag) = if reply.len() == LEGACY_REPLY_LEN || reply.len() == LEGACY_CHALLENGE_LEN {
        let what = format!("answered with an unprefixed {}-byte digest", reply.len());
        (legacy_digest(&what)?, reply)
    } else {
        split_digest(reply)?
    };
    if tag.len() != digest.output_len() {
        return Err(failed(format!(
            "the peer's {} digest has {} bytes, expected {}",
            digest.name(),
            tag.len(),
            digest.output_len()
        )));
    }
    if !digest.verify(key, body, tag) {
        return Err(failed(
            "the peer's digest was wrong (the two sides use different keys)",
        ));
    }
    Ok(())
}

/// Checks the verdict message the peer sent after our reply.
pub(super) fn check_verdict(msg: &[u8]) -> Result<()> {
    match msg {
        WELCOME => Ok(()),
        FAILURE => Err(failed(
            "the peer rejected our digest (the two sides use different keys)",
        )),
        _ => Err(failed(format!(
            "expected #WELCOME# or #FAILURE#, got a {}-byte message",
            msg.len()
        ))),
    }
}
