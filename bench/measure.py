#!/usr/bin/env python3
"""Runs a command N times and prints the median wall time (s) and the median
peak resident memory (KiB).

Wall time is taken here with microsecond resolution. Peak memory is taken in
separate rounds through /usr/bin/time: a child forked from this Python
process would report Python's own resident set (the kernel carries the
pre-exec high-water mark across exec), which would hide a small tool's
footprint under ~13 MiB of interpreter."""
import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall(argv):
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def peak_kib(argv):
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return int(out.read().strip().splitlines()[-1])


def main():
    rounds = int(sys.argv[1])
    argv = sys.argv[2:]
    walls = [wall(argv) for _ in range(rounds)]
    peaks = [peak_kib(argv) for _ in range(rounds)]
    print(f"{statistics.median(walls):.6f} {statistics.median(peaks)}")


if __name__ == "__main__":
    main()
