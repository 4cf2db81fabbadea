#!/usr/bin/env python3
"""Runs a command N times and prints the median wall time (s) and the median
peak resident memory (KiB) of the child, measured with os.wait4 so timing
has microsecond resolution (unlike /usr/bin/time's 10 ms)."""
import os
import statistics
import subprocess
import sys
import time


def once(argv):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss


def main():
    rounds = int(sys.argv[1])
    argv = sys.argv[2:]
    samples = [once(argv) for _ in range(rounds)]
    wall = statistics.median(s[0] for s in samples)
    rss = statistics.median(s[1] for s in samples)
    print(f"{wall:.6f} {rss}")


if __name__ == "__main__":
    main()
