"""CPython's side of benches/connects.rs: a multiprocessing.connection.Listener with a key
that echoes one message per connection and closes it, one client at a time, as the
documentation's accept loop does.

    python3 echo_listener.py HOST KEY BACKLOG [CPU]

Prints "ADDR host:port" once listening. Each line "stats" on stdin is answered with
"STATS served=N failed=M"; the end of stdin prints the last STATS line and exits.
CPU, when given, pins the process to that CPU first.
"""

import os
import resource
import sys
import threading
from multiprocessing.connection import Listener

served = 0
failed = 0


def report(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve(listener):
    global served, failed
    while True:
        try:
            conn = listener.accept()  # blocks in the handshake of the client it took
        except Exception:  # a client that fails its handshake ends only its own turn
            failed += 1
            continue
        try:
            conn.send_bytes(conn.recv_bytes())
            served += 1
        except (OSError, EOFError):
            failed += 1
        finally:
            conn.close()


def main():
    host, key, backlog = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    if len(sys.argv) > 4:
        os.sched_setaffinity(0, {int(sys.argv[4])})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = Listener((host, 0), authkey=key, backlog=backlog)
    report("ADDR %s:%d" % listener.address)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    for _ in sys.stdin:
        report("STATS served=%d failed=%d" % (served, failed))
    report("STATS served=%d failed=%d" % (served, failed))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
