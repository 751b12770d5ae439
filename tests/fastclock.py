#!/usr/bin/env python3
"""Run landbase_import.py as a subprocess whose clock does not really sleep.

    fastclock.py ARGS...        the same arguments as landbase_import.py

The real file is loaded (compiled once for the suite: see launch.py) and its
main() runs with everything real but time: each sleep moves a virtual clock
instead, and is appended to the file named by $FASTCLOCK_LOG (one number a
line), so the fault tests can check the retry and poll schedules without
waiting for them. With $FASTCLOCK_ADVANCE set to a
sandbox's URL, each sleep also moves that sandbox's clock by as much, so the
imports the tool waits on progress in the same virtual time. With $FASTCLOCK_NO_LOOKUP set to a
domain (landbase.com), looking up a name in it fails at once: a request for api.landbase.com that
should have gone through a test proxy cannot leave the host. With $FASTCLOCK_CONNECT_LOG set to a
file, each connection the tool opens appends its "host:port" there (a proxy that is down sees no
attempt: this counts them where they leave). With $FASTCLOCK_SLOW_FSYNC set to a file, each fsync
first creates that file, then really takes 2 s (a slow disk, for two writers at once). With $FASTCLOCK_TTY
set, stderr says it is a terminal (the tool redraws its progress). With $FASTCLOCK_PEAK set to a file, the
run's exit and the peak resident memory of this process (VmHWM, in MiB) are written there as JSON at the end
(test_fuzz_server unsets LBI_TEST_CACHE too: the file is then compiled from its source, as every start is).
"""

import os
import sys
import time

from launch import load

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "landbase_import.py")


def main():
    tool = load("landbase_import", TOOL)
    if os.environ.get("FASTCLOCK_NO_LOOKUP"):
        import socket
        proxy = load("proxy", os.path.join(HERE, "proxy.py"))
        socket.getaddrinfo = proxy.refusing_lookups(os.environ["FASTCLOCK_NO_LOOKUP"], socket.getaddrinfo)
    if os.environ.get("FASTCLOCK_CONNECT_LOG"):
        import socket
        create_connection = socket.create_connection

        def logged(address, *args, **kwargs):
            with open(os.environ["FASTCLOCK_CONNECT_LOG"], "a") as handle:
                handle.write("%s:%s\n" % address[:2])
            return create_connection(address, *args, **kwargs)
        socket.create_connection = logged
    if os.environ.get("FASTCLOCK_SLOW_FSYNC"):
        fsync = os.fsync

        def slow_fsync(fd):
            # a slow disk, for two writers of platform.json at once (test_unattended): the file
            # named says the write has begun, and the fsync really takes 2 s, the window the other
            # one meets
            open(os.environ["FASTCLOCK_SLOW_FSYNC"], "w").close()
            time.sleep(2)
            fsync(fd)
        os.fsync = slow_fsync
    log_path = os.environ.get("FASTCLOCK_LOG")
    advance_url = os.environ.get("FASTCLOCK_ADVANCE")

    def advance(seconds):
        import json
        import urllib.request
        request = urllib.request.Request(advance_url + "/_sandbox/control", method="POST",
                                         data=json.dumps({"advance": seconds}).encode())
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10).close()

    class FastClock(tool.Clock):
        skipped = 0.0

        def now(self):
            return time.monotonic() + self.skipped

        def wall(self):
            return time.time() + self.skipped

        def sleep(self, seconds):
            seconds = max(0.0, seconds)
            self.skipped += seconds
            if log_path:
                with open(log_path, "a") as handle:
                    handle.write("%r\n" % seconds)
            if advance_url:
                advance(seconds)

        def wait_event(self, event, seconds):
            if not event.wait(min(seconds, 1.0)):
                self.skipped += seconds
            return event.is_set()

    tool.CLOCK = FastClock()
    sys.argv[0] = TOOL
    if os.environ.get("FASTCLOCK_TTY"):
        sys.stderr.isatty = lambda: True
    code = tool.main()
    if os.environ.get("FASTCLOCK_PEAK"):
        write_peak(os.environ["FASTCLOCK_PEAK"], code)
    return code


def write_peak(path, code):
    import json
    figures = {"exit": code}
    with open("/proc/self/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name == "VmHWM":
                figures["peak_mib"] = int(value.split()[0]) / 1024.0
    with open(path, "w") as handle:
        json.dump(figures, handle)


if __name__ == "__main__":
    sys.exit(main())
