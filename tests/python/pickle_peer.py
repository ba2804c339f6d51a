"""A CPython peer for procwire's pickle interop tests (tests/interop_pickle.rs).

Run through procwire::spawn: the descriptor before ':' in the environment variable
PROCWIRE_FD is a socket to the Rust test.

    python3 pickle_peer.py fd|listen|connect

fd:      that socket is the connection (a duplex()-style socketpair).
listen:  binds multiprocessing.connection.Listener(('127.0.0.1', 0)), sends "HOST:PORT"
         on that socket with send_bytes, and accepts one client: the connection.
connect: receives "HOST:PORT" on that socket, and Client() is the connection.

On the connection:
  1. recv() one object, which must equal EXPECTED, types included (so True is not 1);
  2. send(EXPECTED), with this interpreter's default protocol;
  3. send_bytes(pickle.dumps(EXPECTED, protocol=p)) for p = 0 .. HIGHEST_PROTOCOL;
  4. send(array('i', [1, 2, 3])), which the Rust side must refuse cleanly;
  5. send(EXPECTED) again, which it must still receive;
  6. wait for the Rust side to close.

Exit status: 0 success, 1 the received object differs (the difference is printed),
4 EOFError or connection reset, 5 anything else, 2 usage error.
Written for every CPython 3 that pyenv may hold (3.6 and later).
"""

import os
import pickle
import sys
from array import array
from multiprocessing.connection import Client, Connection, Listener

EXPECTED = {
    "none": None,
    "unit": None,
    "yes": True,
    "no": False,
    "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1,
             2**63 - 1, -(2**63)],
    "float": 1.5,
    "floats": [0.0, -2.5, 1e300, 5e-324],
    "text": "h\xe9llo \u2603 \U0001d11e",
    "empty_text": "",
    "blob": b"\x00\x01\xffbytes",
    "empty_blob": b"",
    "list": [1, 2, 3],
    "empty_list": [],
    "tuple": (7, "seven", True, None),
    "dict": {"a": 1, "b": -2},
    "int_keys": {1: "one", -1: "minus one"},
    "nested": [{"xs": [(1, None), (2, b"2")]}, {}],
}


def differences(got, want, path="obj"):
    """Where got differs from want, comparing types exactly."""
    if type(got) is not type(want):
        return ["%s: %s %r, expected %s %r" % (path, type(got).__name__, got,
                                               type(want).__name__, want)]
    if isinstance(want, dict):
        if set(got) != set(want):
            return ["%s: keys %r, expected %r" % (path, sorted(got, key=repr),
                                                  sorted(want, key=repr))]
        out = []
        for key in want:
            out += differences(got[key], want[key], "%s[%r]" % (path, key))
        return out
    if isinstance(want, (list, tuple)):
        if len(got) != len(want):
            return ["%s: length %d, expected %d" % (path, len(got), len(want))]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += differences(g, w, "%s[%d]" % (path, i))
        return out
    if got != want:
        return ["%s: %r, expected %r" % (path, got, want)]
    return []


def connect(mode, control):
    if mode == "fd":
        return control
    if mode == "listen":
        listener = Listener(("127.0.0.1", 0))
        control.send_bytes(("%s:%d" % listener.address).encode())
        try:
            return listener.accept()
        finally:
            listener.close()
    host, _, port = control.recv_bytes().decode().rpartition(":")
    return Client((host, int(port)))


def exchange(conn):
    got = conn.recv()
    problems = differences(got, EXPECTED)
    conn.send(EXPECTED)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        conn.send_bytes(pickle.dumps(EXPECTED, protocol=protocol))
    conn.send(array("i", [1, 2, 3]))
    conn.send(EXPECTED)
    try:
        conn.recv_bytes()
    except EOFError:
        pass
    return problems


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("fd", "listen", "connect"):
        return 2
    control = Connection(int(os.environ["PROCWIRE_FD"].split(":")[0]))
    print("python %d.%d.%d %s" % (sys.version_info[:3] + (sys.argv[1],)), flush=True)
    try:
        problems = exchange(connect(sys.argv[1], control))
    except (EOFError, ConnectionResetError, BrokenPipeError) as e:
        print("%s: %s" % (type(e).__name__, e), flush=True)
        return 4
    except Exception as e:  # reported to the test, which fails on it
        print("%s: %s" % (type(e).__name__, e), flush=True)
        return 5
    for problem in problems:
        print("mismatch: " + problem, flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
