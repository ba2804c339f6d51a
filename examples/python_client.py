"""The Python client of examples/python_server.rs (run that first).

    python3 examples/python_client.py 127.0.0.1:6000

Sends requests with Connection.send() and checks every reply with == and its type.
Prints "ok" and exits 0 when all are right.
"""

import sys
from array import array
from multiprocessing.connection import Client

KEY = b"secret password"


def check(got, want):
    if got != want or type(got) is not type(want):
        raise AssertionError("got %r (%s), expected %r (%s)"
                             % (got, type(got).__name__, want, type(want).__name__))


def main():
    host, _, port = sys.argv[1].rpartition(":")
    with Client((host, int(port)), authkey=KEY) as conn:
        def ask(op, arg):
            conn.send((op, arg))
            return conn.recv()

        for x in [(1,), {1, 2}, frozenset({(1, "a")}), bytearray(b"\x00"), 2**100,
                  {(1, 2): [None, -0.0, float("inf")]}, b"bytes", "str \u2603"]:
            check(ask("echo", x), x)
        for x in [(1,), {"k": [1, (2, 3)]}, b"\x00'", -1.5e-7, frozenset(), set()]:
            check(ask("repr", x), repr(x))
        check(ask("sum", [2**64, -(2**70), 3]), 2**64 - 2**70 + 3)
        check(ask("job", {"name": "build", "sizes": [3, 9, 4]}),
              {"name": "build", "total": 16, "largest": 9})
        check(ask("job", {"name": "empty", "sizes": []}),
              {"name": "empty", "total": 0, "largest": None})
        op, message = ask("sum", ["not an int"])
        check(op, "error")
        op, message = ask("echo", array("i", [1]))
        check(op, "error")
        assert "array" in message, message
        check(ask("bye", None), "bye")
    print("ok")


if __name__ == "__main__":
    main()
