"""The kernel's share of a delivery: CPU per send() of one frame on loopback TCP.

The fan-out benchmark's 200 recipients and 20,000 deliveries/s, with nothing but a Python
loop around ``socket.send``: what a delivery costs before any server code runs. On
loopback the sender's send() also runs the receiving side's TCP processing, which is
why it is several times a Unix socketpair's send.

    python benchmarks/send_floor.py      # prints CPU per send; measured: 5.5 µs
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

RECIPIENTS, ROUNDS_PER_SECOND, SECONDS = 200, 100, 5
FRAME = b"\x81\x7e\x01\x48" + b"x" * 328  # a websocket text frame of a typical message

READER = """
import selectors, socket, sys, time
port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
selector = selectors.DefaultSelector()
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    selector.register(s, selectors.EVENT_READ)
deadline = time.time() + seconds
while time.time() < deadline:
    for key, _ in selector.select(0.5):
        try:
            key.fileobj.recv(65536)
        except BlockingIOError:
            pass
"""


def main() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(RECIPIENTS)
    port = server.getsockname()[1]
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(port), str(RECIPIENTS), str(SECONDS + 3)]
    )
    sockets = []
    for _ in range(RECIPIENTS):
        conn, _ = server.accept()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(conn)
    cpu_start, start = time.process_time(), time.time()
    sends = 0
    for round_ in range(ROUNDS_PER_SECOND * SECONDS):
        for conn in sockets:
            conn.send(FRAME)
            sends += 1
        time.sleep(max(0.0, start + (round_ + 1) / ROUNDS_PER_SECOND - time.time()))
    cpu = time.process_time() - cpu_start
    print(f"{sends:,} sends to {RECIPIENTS} sockets: {cpu / sends * 1e6:.2f} µs CPU per send")
    reader.wait()


if __name__ == "__main__":
    main()
