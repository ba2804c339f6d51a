"""A CPython peer for procwire's PyValue interop tests (tests/interop_pyvalue.rs).

Runs on Python 2.7 and every Python 3. Run through procwire::spawn: the descriptor
before ':' in PROCWIRE_FD is a socket to the Rust test.

    python pyvalue_peer.py fd|connect

fd:      that socket is the connection (a duplex()-style socketpair).
connect: receives "HOST:PORT" on that socket, and Client() is the connection.

On the connection:
  1. recv_bytes() the protocols the Rust side writes, as b"2,3,4";
  2. for each object of OBJECTS: send(obj) (this interpreter's default protocol), then
     send_bytes(pickle.dumps(obj, p)) for every protocol p it has; after each, recv() one
     echo per Rust protocol and check it: == and the same type, all the way down;
  3. send_bytes(b"rust"), and recv() FROM_RUST once per Rust protocol, each value built
     in Rust, and check it;
  4. send_bytes(b"done"), and wait for the Rust side to close.

Exit status: 0 success, 1 a received object differs (the differences are printed),
4 EOFError or connection reset, 5 anything else, 2 usage error.
"""

import math
import os
import pickle
import sys
from multiprocessing.connection import Client

PY2 = sys.version_info[0] == 2
if PY2:
    from _multiprocessing import Connection
else:
    from multiprocessing.connection import Connection

shared = [1, u"two"]
shared_dict = {}

OBJECTS = [
    None, True, False,
    0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, 2**40, -(2**40),
    # int(): Python 2 computes these as longs, and a long in the 64-bit range comes back
    # as an int (PyValue has one int type).
    int(2**63 - 1), int(-(2**63)), 2**63, 2**64, -(2**64), 2**64 - 1, 2**100, -(2**100) - 1, 2**1000,
    -(2**2000) + 7,
    0.0, -0.0, 1.5, 0.1, 1e300, -1e-300, 5e-324, float("inf"), float("-inf"), float("nan"),
    u"", u"a", u"h\xe9llo \u2603 \U0001d11e", u"quote ' \" back \\ nl \n nul \x00", u"x" * 300,
    b"", b"\x00\xff", bytes(bytearray(range(256))), b"y" * 70000,
    bytearray(), bytearray(b"ab\x00"), bytearray(b"z" * 300),
    [], [1], [1, [2, [3, []]]], list(range(2500)), [None, None],
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((), ((),)), tuple(range(10)),
    {}, {u"a": 1}, {(1, 2): u"x", (): None, frozenset([1]): 2, (u"t", (3,)): [4]},
    {1: 2, u"k": [1], None: (), 1.5: b"x", True: False, -(2**70): u"big"},
    dict((i, str(i)) for i in range(1500)), {u"d": {u"e": {}}},
    set(), set([1]), set([(1, 2), (3, 4)]), set([u"a", b"b", 3, None, (1, (2,))]), set(range(1200)),
    frozenset(), frozenset([1, (2, 3)]), frozenset([frozenset([1]), frozenset()]),
    [shared, shared, {u"again": shared}], (shared_dict, shared_dict),
    [{u"k": (1, set([2, 3]), frozenset(), bytearray(b"z"), b"q", 2**65)}],
]

FROM_RUST = [
    None, True, -(2**100), 2**200 + 1, 2**40, -7, 2**64 - 1,
    -0.0, float("inf"), float("nan"), 2.5,
    u"h\xe9 \u2603", u"", b"\x00\xff", b"", bytearray(b"ba"), bytearray(),
    (), (1,), (1, u"two", None), [1, [2.5, [u"deep"]]],
    {(1, 2): frozenset([3]), u"set": set([(1, u"a"), (2, u"b")]), None: []},
    frozenset([(1, 2), u"x"]), set(),
    (1, u"s", [1.5], None, {u"k": (1, 2)}, 2**64 - 1, b"b"),
]


def canon(x):
    """A type-tagged form of x that compares equal only when every type matches."""
    name = type(x).__name__
    if isinstance(x, float):
        return (name, repr(x))
    if isinstance(x, (list, tuple)):
        return (name, [canon(i) for i in x])
    if isinstance(x, dict):
        return (name, sorted(((canon(k), canon(v)) for k, v in x.items()), key=repr))
    if isinstance(x, (set, frozenset)):
        return (name, sorted((canon(i) for i in x), key=repr))
    return (name, repr(x))


def has_nan(x):
    if isinstance(x, float):
        return math.isnan(x)
    if isinstance(x, dict):
        return any(has_nan(k) or has_nan(v) for k, v in x.items())
    if isinstance(x, (list, tuple, set, frozenset)):
        return any(has_nan(i) for i in x)
    return False


def differs(got, want):
    """Why got is not want (== and types all the way down), or None."""
    if canon(got) != canon(want):
        return "got %s, expected %s" % (short(got), short(want))
    if not has_nan(want) and got != want:
        return "not ==: got %s, expected %s" % (short(got), short(want))
    return None


def short(x):
    r = repr(x)
    return r if len(r) < 200 else r[:200] + "..."


def connect(mode, control):
    if mode == "fd":
        return control
    host, _, port = control.recv_bytes().decode().rpartition(":")
    return Client((host, int(port)))


def exchange(conn):
    protocols = [int(p) for p in conn.recv_bytes().decode().split(",")]
    problems = []
    for i, obj in enumerate(OBJECTS):
        payloads = [None] + [pickle.dumps(obj, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
        for j, payload in enumerate(payloads):
            if payload is None:
                conn.send(obj)
            else:
                conn.send_bytes(payload)
            for p in protocols:
                why = differs(conn.recv(), obj)
                if why:
                    sent = "send()" if payload is None else "protocol %d" % (j - 1)
                    problems.append("OBJECTS[%d] sent with %s, echoed with protocol %d: %s"
                                    % (i, sent, p, why))
    conn.send_bytes(b"rust")
    for p in protocols:
        for i, want in enumerate(FROM_RUST):
            why = differs(conn.recv(), want)
            if why:
                problems.append("FROM_RUST[%d] with protocol %d: %s" % (i, p, why))
    conn.send_bytes(b"done")
    try:
        conn.recv_bytes()
    except EOFError:
        pass
    return problems


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("fd", "connect"):
        return 2
    control = Connection(int(os.environ["PROCWIRE_FD"].split(":")[0]))
    sys.stdout.write("python %d.%d.%d %s: %d objects\n"
                     % (sys.version_info[:3] + (sys.argv[1], len(OBJECTS))))
    sys.stdout.flush()
    try:
        problems = exchange(connect(sys.argv[1], control))
    except (EOFError, IOError) as e:
        print("%s: %s" % (type(e).__name__, e))
        return 4
    except Exception as e:  # reported to the test, which fails on it
        print("%s: %s" % (type(e).__name__, e))
        return 5
    for problem in problems:
        print("mismatch: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
