"""A CPython multiprocessing.connection Listener or Client, for procwire's interop tests.

Run by tests/interop_listener.rs through procwire::spawn: the descriptor before ':' in the
environment variable PROCWIRE_FD is a control connection to the Rust test.

    python3 mp_peer.py listen|connect FAMILY KEY

FAMILY: tcp | unix:PATH | abstract:NAME.  KEY: '-' for no authentication, else the key.
listen:  binds a multiprocessing.connection.Listener, sends its address on the control
         connection ("tcp:HOST:PORT", "unix:PATH" or "abstract:NAME"), accepts one client.
connect: receives the address to connect to on the control connection, then Client().
Then it echoes every message (recv_bytes/send_bytes) until b"END", sends
array('i', [42, 1729, -7]) with send_bytes, and waits for the peer to close.

Exit status: 0 success, 3 AuthenticationError, 4 EOFError or connection reset,
5 anything else, 2 usage error.
"""

import os
import sys
from array import array
from multiprocessing.connection import AuthenticationError, Client, Connection, Listener


def parse(family):
    if family == "tcp":
        return ("127.0.0.1", 0)
    kind, _, rest = family.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return (host, int(port))
    if kind == "unix":
        return rest
    if kind == "abstract":
        return "\0" + rest
    raise SystemExit(2)


def show(address):
    if isinstance(address, tuple):
        return "tcp:%s:%d" % address
    if isinstance(address, bytes):
        return "abstract:" + address[1:].decode()
    if address.startswith("\0"):
        return "abstract:" + address[1:]
    return "unix:" + address


def echo(conn):
    while True:
        msg = conn.recv_bytes()
        if msg == b"END":
            break
        conn.send_bytes(msg)
    conn.send_bytes(array("i", [42, 1729, -7]))
    try:
        conn.recv_bytes()
    except EOFError:
        pass


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("listen", "connect"):
        raise SystemExit(2)
    role, family, key = sys.argv[1:]
    authkey = None if key == "-" else key.encode()
    control = Connection(int(os.environ["PROCWIRE_FD"].split(":")[0]))
    try:
        if role == "listen":
            listener = Listener(parse(family), authkey=authkey)
            control.send_bytes(show(listener.address).encode())
            try:
                conn = listener.accept()
            finally:
                try:
                    listener.close()
                except ValueError:
                    pass  # CPython < 3.9 tries to unlink an abstract name on close
        else:
            conn = Client(parse(control.recv_bytes().decode()), authkey=authkey)
        print("authenticated" if authkey is not None else "connected", flush=True)
        echo(conn)
    except AuthenticationError as e:
        print("AuthenticationError: %s" % e, flush=True)
        return 3
    except (EOFError, ConnectionResetError, BrokenPipeError) as e:
        print("%s: %s" % (type(e).__name__, e), flush=True)
        return 4
    except Exception as e:  # reported to the test, which fails on it
        print("%s: %s" % (type(e).__name__, e), flush=True)
        return 5
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
