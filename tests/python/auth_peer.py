"""A CPython peer for procwire's authentication interop tests.

Run by tests/auth.rs through procwire::spawn, which passes a connected socket whose
descriptor number is the part before ':' in the environment variable PROCWIRE_FD.

    python3 auth_peer.py server|client KEY

server: deliver_challenge then answer_challenge (as Listener.accept() does);
client: answer_challenge then deliver_challenge (as Client() does). After a successful
handshake it sends b"hello from python" and expects b"hello from rust".

Exit status: 0 success, 3 AuthenticationError, 4 EOFError (peer closed),
5 wrong application message, 2 usage error. Stdout tells what happened.
Written for every CPython 3 that pyenv may hold (3.6 and later).
"""

import os
import sys
from multiprocessing.connection import (
    AuthenticationError,
    Connection,
    answer_challenge,
    deliver_challenge,
)


def report(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("server", "client"):
        report("usage: auth_peer.py server|client KEY")
        return 2
    role = sys.argv[1]
    key = sys.argv[2].encode("utf-8")
    fd = int(os.environ["PROCWIRE_FD"].split(":")[0])
    conn = Connection(fd)
    report("python %d.%d.%d %s" % (sys.version_info[:3] + (role,)))
    try:
        if role == "server":
            deliver_challenge(conn, key)
            answer_challenge(conn, key)
        else:
            answer_challenge(conn, key)
            deliver_challenge(conn, key)
    except AuthenticationError as e:
        report("auth-error: %s" % e)
        return 3
    except EOFError:
        report("eof during handshake")
        return 4
    report("authenticated")
    conn.send_bytes(b"hello from python")
    try:
        msg = conn.recv_bytes()
    except EOFError:
        report("eof after handshake")
        return 4
    report("received %r" % (msg,))
    return 0 if msg == b"hello from rust" else 5


if __name__ == "__main__":
    sys.exit(main())
