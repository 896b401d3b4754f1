"""Child process of test_fake_server_emfile.py: a fake server that runs out of descriptors.

Run as ``python emfile_child.py BACKEND``. It speaks one line at a time on stdio:

- prints ``port N`` once listening;
- on ``fill``: opens descriptors until EMFILE (the limit is lowered first), prints ``full``;
- on ``free``: closes them again, prints ``freed``;
- on ``stop``: leaves ``async with FakeSMTPServer``, prints ``stopped errors=[...]``, exits 0.

The server's log records are printed as ``log: <message>`` as they happen, so the parent
can wait for "accept() failed" instead of guessing when it happened.
"""

from __future__ import annotations

import logging
import os
import resource
import sys

import anyio
import anyio.to_thread

from smtpsubmit.testing import FakeSMTPServer, Mode

#: Low enough to fill quickly, high enough for the interpreter, the loop and the listener.
LIMIT = 256


class _Echo(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"log: {record.getMessage()}", flush=True)


def _fill() -> list[int]:
    held = []
    while True:
        try:
            held.append(os.dup(0))
        except OSError:  # EMFILE: the table is full
            return held


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(LIMIT, soft), hard))
    logging.getLogger("smtpsubmit.testing").addHandler(_Echo())
    held: list[int] = []
    # Trustme's temporary CA file is written in __aenter__, before any filling.
    async with FakeSMTPServer(mode=Mode.PLAIN) as server:
        print(f"port {server.port}", flush=True)
        while (command := (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()) != "stop":
            if command == "fill":
                held = _fill()
                print("full", flush=True)
            elif command == "free":
                for fd in held:
                    os.close(fd)
                held = []
                print("freed", flush=True)
        errors = server.errors
    print(f"stopped errors={errors!r}", flush=True)


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1])
