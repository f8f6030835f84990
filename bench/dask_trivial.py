"""Dask distributed's throughput on trivial tasks, the baseline for
bench/throughput.sh: a LocalCluster of N worker processes (one thread each),
N trivial Python tasks submitted at once, timed from submission to the last
result gathered. Prints tasks per second."""
import sys
import time

from dask.distributed import Client, LocalCluster


def trivial(i):
    return i


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.gather(client.map(trivial, range(100), key=[f"warm-{i}" for i in range(100)]))
            t = time.perf_counter()
            futures = client.map(trivial, range(n), pure=False)
            client.gather(futures)
            secs = time.perf_counter() - t
    print(f"dask distributed: {n} trivial tasks on {workers} workers in {secs:.2f} s = {n / secs:.0f} tasks/s")


if __name__ == "__main__":
    main()
