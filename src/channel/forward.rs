//! Every method of [`Sender`] and [`Receiver`] on [`Connection`], generated from the one
//! list below: a new capability of a half is added there, and nowhere else.
//!
//! Each entry names the half and the method, with its generics in brackets and its
//! `where` clause, if any, in brackets too; the generated method forwards to the half
//! and its docs point to the half's.

use std::fs::File;
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use bytemuck::Pod;

use super::{Connection, Iter};
#[cfg(doc)]
use super::{Receiver, Sender};
use crate::auth::PeerCredentials;
use crate::codec::api::{Decode, Encode};
use crate::error::Result;
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::shm::SharedArray;
#[cfg(feature = "postcard")]
use crate::Postcard;

macro_rules! forward {
    ($(
        $(#[$attr:meta])*
        $half:ident($Half:ident).$name:ident [$($g:tt)*] ($($arg:ident: $ty:ty),*) -> $ret:ty
        $(where [$($w:tt)*])?;
    )*) => {
        impl<S, R, C> Connection<S, R, C> {$(
            $(#[$attr])*
            #[doc = concat!(
                "See [`", stringify!($Half), "::", stringify!($name), "`]",
                "(", stringify!($Half), "::", stringify!($name), ")."
            )]
            #[doc = ""]
            #[doc = "# Errors"]
            #[doc = ""]
            #[doc = concat!(
                "As [`", stringify!($Half), "::", stringify!($name), "`]",
                "(", stringify!($Half), "::", stringify!($name), ")."
            )]
            pub fn $name<$($g)*>(&self, $($arg: $ty),*) -> $ret $(where $($w)*)? {
                self.$half.$name($($arg),*)
            }
        )*}
    };
}

forward! {
    tx(Sender).send [] (value: &S) -> Result<()> where [C: Encode<S>];
    tx(Sender).send_timeout [] (value: &S, timeout: Duration) -> Result<()> where [C: Encode<S>];
    tx(Sender).send_bytes [P: Pod] (data: &[P]) -> Result<()>;
    tx(Sender).send_bytes_timeout [P: Pod] (data: &[P], timeout: Duration) -> Result<()>;
    tx(Sender).flush_timeout [] (timeout: Duration) -> Result<()>;
    tx(Sender).send_fds [] (value: &S, fds: &[BorrowedFd<'_>]) -> Result<()> where [C: Encode<S>];
    tx(Sender).send_bytes_fds [P: Pod] (data: &[P], fds: &[BorrowedFd<'_>]) -> Result<()>;
    tx(Sender).send_connection [S2, R2, C2] (conn: &Connection<S2, R2, C2>) -> Result<()>;
    tx(Sender).send_file [] (file: &File) -> Result<u64>;
    tx(Sender).send_file_with_progress [] (file: &File, progress: impl FnMut(u64, u64)) -> Result<u64>;
    tx(Sender).send_bytes_with_progress [P: Pod] (data: &[P], progress: impl FnMut(u64, u64)) -> Result<()>;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    tx(Sender).send_array [A: Pod] (array: &SharedArray<A>) -> Result<()>;
    tx(Sender).enable_large_memfd [] (threshold: usize) -> Result<()>;

    rx(Receiver).recv [] () -> Result<R> where [C: Decode<R>];
    rx(Receiver).try_recv [] () -> Result<R> where [C: Decode<R>];
    rx(Receiver).recv_timeout [] (timeout: Duration) -> Result<R> where [C: Decode<R>];
    rx(Receiver).recv_bytes [] () -> Result<Vec<u8>>;
    rx(Receiver).try_recv_bytes [] () -> Result<Vec<u8>>;
    rx(Receiver).recv_bytes_timeout [] (timeout: Duration) -> Result<Vec<u8>>;
    rx(Receiver).recv_bytes_into [P: Pod] (out: &mut [P]) -> Result<usize>;
    rx(Receiver).try_recv_bytes_into [P: Pod] (out: &mut [P]) -> Result<usize>;
    rx(Receiver).recv_bytes_into_timeout [P: Pod] (out: &mut [P], timeout: Duration) -> Result<usize>;
    rx(Receiver).recv_slice_into ['a, P: Pod] (out: &'a mut [P]) -> Result<&'a mut [P]>;
    rx(Receiver).try_recv_slice_into ['a, P: Pod] (out: &'a mut [P]) -> Result<&'a mut [P]>;
    rx(Receiver).recv_slice_into_timeout ['a, P: Pod] (out: &'a mut [P], timeout: Duration) -> Result<&'a mut [P]>;
    rx(Receiver).enable_fds [] () -> Result<()>;
    rx(Receiver).accept_large_memfd [] (max_mapped: u64) -> Result<()>;
    rx(Receiver).recv_fds [] () -> Result<(R, Vec<OwnedFd>)> where [C: Decode<R>];
    rx(Receiver).try_recv_fds [] () -> Result<(R, Vec<OwnedFd>)> where [C: Decode<R>];
    rx(Receiver).recv_fds_timeout [] (timeout: Duration) -> Result<(R, Vec<OwnedFd>)> where [C: Decode<R>];
    rx(Receiver).recv_bytes_fds [] () -> Result<(Vec<u8>, Vec<OwnedFd>)>;
    rx(Receiver).try_recv_bytes_fds [] () -> Result<(Vec<u8>, Vec<OwnedFd>)>;
    rx(Receiver).recv_bytes_fds_timeout [] (timeout: Duration) -> Result<(Vec<u8>, Vec<OwnedFd>)>;
    #[cfg(feature = "postcard")]
    rx(Receiver).recv_connection [S2, R2] () -> Result<Connection<S2, R2, Postcard>>;
    rx(Receiver).recv_connection_with [S2, R2, C2: Clone] (codec: C2) -> Result<Connection<S2, R2, C2>>;
    rx(Receiver).recv_file [] (dest: impl AsRef<Path>, limit: u64) -> Result<u64>;
    rx(Receiver).recv_file_with_progress [] (dest: impl AsRef<Path>, limit: u64, progress: impl FnMut(u64, u64)) -> Result<u64>;
    rx(Receiver).recv_bytes_into_with_progress [P: Pod] (out: &mut [P], progress: impl FnMut(u64, u64)) -> Result<usize>;
    rx(Receiver).recv_to_writer [] (out: &mut impl Write, limit: u64) -> Result<u64>;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rx(Receiver).recv_array [A: Pod] () -> Result<SharedArray<A>>;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rx(Receiver).try_recv_array [A: Pod] () -> Result<SharedArray<A>>;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rx(Receiver).recv_array_timeout [A: Pod] (timeout: Duration) -> Result<SharedArray<A>>;
    rx(Receiver).poll [] (timeout: Option<Duration>) -> Result<bool>;
    rx(Receiver).peer_credentials [] () -> Result<PeerCredentials>;
}

/// The methods of [`Receiver`] that cannot fail, forwarded by hand.
impl<S, R, C> Connection<S, R, C> {
    /// A blocking iterator over received values; see [`Receiver::iter`].
    pub fn iter(&self) -> Iter<'_, R, C>
    where
        C: Decode<R>,
    {
        self.rx.iter()
    }

    /// The largest payload this connection accepts; see [`Receiver::max_message_size`].
    pub fn max_message_size(&self) -> u64 {
        self.rx.max_message_size()
    }

    /// Sets the largest payload this connection accepts; see
    /// [`Receiver::set_max_message_size`].
    pub fn set_max_message_size(&self, max: u64) {
        self.rx.set_max_message_size(max);
    }

    /// Makes blocking receives spin before they block; see [`Receiver::set_spin`].
    pub fn set_spin(&self, max: Option<std::time::Duration>) {
        self.rx.set_spin(max);
    }

    /// How long a blocking receive spins at most; see [`Receiver::spin`].
    pub fn spin(&self) -> Option<std::time::Duration> {
        self.rx.spin()
    }

    /// The largest shared array this connection maps; see [`Receiver::max_array_size`].
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn max_array_size(&self) -> u64 {
        self.rx.max_array_size()
    }

    /// Sets the largest shared array this connection maps; see
    /// [`Receiver::set_max_array_size`].
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn set_max_array_size(&self, max: u64) {
        self.rx.set_max_array_size(max);
    }
}
