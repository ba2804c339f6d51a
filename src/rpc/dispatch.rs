//! The [`dispatch!`](crate::rpc::dispatch) macro: typed per-variant handlers.

/// Declares a protocol: a request enum, a response enum, a handler trait with one method
/// per request, and a client trait with one typed method per request on [`Requester`].
///
/// A protocol here is a fixed set of named commands. Each command is a variant of the
/// request enum, and the server has one handler method for it: the method's arguments are
/// the variant's fields, and its return type is that command's own answer. A client either
/// waits for the answer (a request) or only for the acknowledgement that the handler ran (a
/// one-way message, [`Requester::send`]). Each request variant is routed to its own method,
/// so a handler that misses a method, or returns the wrong type, does not compile; on the
/// wire every call is one [`Envelope`](crate::rpc::Envelope) (see the
/// [`rpc`](crate::rpc#protocol) module for the messages exchanged).
///
/// ```text
/// procwire::rpc::dispatch! {
///     /// docs
///     pub trait Handler, client Client {
///         enum Request, Response;
///         /// docs
///         Variant => fn method(arg: Type, ...) -> ReturnType;
///         ...
///     }
/// }
/// ```
///
/// generates
///
/// - `enum Request { Variant { arg: Type, ... }, ... }` and
///   `enum Response { Variant(ReturnType), ... }`, serde-serialisable (your crate depends
///   on `serde`);
/// - `trait Handler`, with `fn method(&mut self, arg: Type, ...) -> Result<ReturnType,
///   procwire::rpc::BoxError>` for each variant and a provided
///   `fn dispatch(&mut self, call: Call<'_, Request>) -> Result<Response, BoxError>` that
///   routes a [`Call`](crate::rpc::Call) to its method — hand it to [`serve`](crate::rpc::serve);
/// - `trait Client`, with `fn method(&self, arg: Type, ..., timeout: Duration) ->
///   procwire::Result<ReturnType>` for each variant, implemented for
///   `Requester<Request, Response, C>`: a request and its typed answer. One-way messages
///   are [`Requester::send`]`(Request::Variant { .. })`;
///   their handler runs the same method and its value is dropped.
///
/// Handlers that need the call's [`MsgId`](crate::rpc::MsgId) (to drop duplicates) or a pushed
/// file can look at the [`Call`](crate::rpc::Call) before passing it on to `dispatch`. Avoid
/// method names that [`Requester`] itself has (`send`, `request`, …): those would win.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use procwire::rpc::{BoxError, Requester, RpcConnection, serve};
///
/// procwire::rpc::dispatch! {
///     /// What a drone does when told.
///     pub trait Drone, client DroneClient {
///         enum DroneRequest, DroneResponse;
///         /// Climb to `metres`.
///         TakeOff => fn take_off(metres: f32) -> ();
///         /// The battery's charge, from 0 to 1.
///         Battery => fn battery() -> f32;
///     }
/// }
///
/// struct Sim {
///     altitude: f32,
/// }
///
/// impl Drone for Sim {
///     fn take_off(&mut self, metres: f32) -> Result<(), BoxError> {
///         if metres > 120.0 {
///             return Err(format!("{metres} m is above the 120 m ceiling").into());
///         }
///         self.altitude = metres;
///         Ok(())
///     }
///     fn battery(&mut self) -> Result<f32, BoxError> {
///         Ok(1.0 - self.altitude / 1000.0)
///     }
/// }
///
/// let (client, server): (RpcConnection<DroneRequest, DroneResponse>, _) = procwire::duplex()?;
/// std::thread::spawn(move || {
///     let mut sim = Sim { altitude: 0.0 };
///     serve(&server, |call| sim.dispatch(call))
/// });
/// let drone = Requester::new(client)?;
/// let timeout = Duration::from_secs(5);
/// drone.take_off(100.0, timeout)?;
/// assert_eq!(drone.battery(timeout)?, 0.9);
/// let err = drone.take_off(500.0, timeout).unwrap_err();
/// assert_eq!(err.to_string(), "the peer's handler failed: 500 m is above the 120 m ceiling");
/// drone.send(DroneRequest::TakeOff { metres: 50.0 })?; // a one-way command
/// assert_eq!(drone.battery(timeout)?, 0.95);
/// # Ok::<(), procwire::Error>(())
/// ```
///
/// [`Requester`]: crate::rpc::Requester
/// [`Requester::send`]: crate::rpc::Requester::send
// Exported at the crate root, as every `macro_rules!` macro is; its documented path is
// `procwire::rpc::dispatch`.
#[doc(hidden)]
#[macro_export]
macro_rules! dispatch {
    (
        $(#[$meta:meta])*
        $vis:vis trait $handler:ident, client $client:ident {
            enum $req:ident, $resp:ident;
            $(
                $(#[$vmeta:meta])*
                $variant:ident => fn $method:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $ret:ty;
            )*
        }
    ) => {
        #[doc = concat!("The requests of [`", stringify!($handler), "`].")]
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        $vis enum $req {
            $(
                $(#[$vmeta])*
                $variant { $( #[allow(missing_docs)] $arg: $ty ),* },
            )*
        }

        #[doc = concat!("The responses of [`", stringify!($handler), "`], one variant per request.")]
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        $vis enum $resp {
            $(
                $(#[$vmeta])*
                $variant($ret),
            )*
        }

        $(#[$meta])*
        $vis trait $handler {
            $(
                $(#[$vmeta])*
                fn $method(&mut self $(, $arg: $ty)*) -> ::std::result::Result<$ret, $crate::rpc::BoxError>;
            )*

            /// Routes `call` to the method of its variant.
            fn dispatch(
                &mut self,
                call: $crate::rpc::Call<'_, $req>,
            ) -> ::std::result::Result<$resp, $crate::rpc::BoxError> {
                match call.body {
                    $( $req::$variant { $($arg),* } => self.$method($($arg),*).map($resp::$variant), )*
                }
            }
        }

        #[doc = concat!("Typed requests to a [`", stringify!($handler), "`], on a [`Requester`](", stringify!($crate), "::Requester).")]
        $vis trait $client {
            $(
                $(#[$vmeta])*
                fn $method(&self $(, $arg: $ty)*, timeout: ::std::time::Duration) -> $crate::Result<$ret>;
            )*
        }

        impl<C> $client for $crate::rpc::Requester<$req, $resp, C>
        where
            C: $crate::Codec<$crate::rpc::Envelope<$req, $resp>> + Clone + Send + 'static,
        {
            $(
                fn $method(&self $(, $arg: $ty)*, timeout: ::std::time::Duration) -> $crate::Result<$ret> {
                    match self.request($req::$variant { $($arg),* }, timeout)? {
                        $resp::$variant(value) => Ok(value),
                        #[allow(unreachable_patterns)]
                        other => Err($crate::Error::Protocol(format!(
                            "a {} request was answered with {:?}",
                            stringify!($variant),
                            other
                        ))),
                    }
                }
            )*
        }
    };
}
