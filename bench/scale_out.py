"""The same backfill on Celery workers: one worker, then two, wall time of each in the same run.

Starts PostgreSQL, Redis and ``dagster dev`` on loopback with deploy/cluster.yaml and
``ACE_EXECUTOR=celery`` (the helpers of tests/servers.py), writes a synthetic project, and for each
worker count starts that many ``dagster-celery`` workers (one pool process each), backfills every
asset of the lines, waits for the backfill to end and stops the workers. Prints one row per worker
count: wall seconds from launch to the backfill's end, and the speed-up over one worker.

    python -m bench.scale_out [--lines 3] [--size 96] [--frames 600] [--workers 1 2]

Needs postgresql and redis-server (Debian packages) and ``pip install -e '.[cluster]'``. Every
worker here shares this machine's cores with the daemon, the runs' orchestrators and PostgreSQL:
on a 2-core machine the second worker gains little; the figure that matters is on real worker
machines. Say the load average (``uptime``) beside the figures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from servers import (DagsterDev, celery_worker, cluster_env, missing_servers, set_pool_limit,  # noqa: E402
                     start_postgres_and_redis, wait_for, wait_for_workers)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=3, help="lines in the backfill (default 3)")
    ap.add_argument("--size", type=int, default=96, help="frame height and width, px (default 96)")
    ap.add_argument("--frames", type=int, default=600, help="frames per line (default 600)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts, in order (default 1 2)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per backfill")
    args = ap.parse_args(argv)
    missing = missing_servers()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2

    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.instance.ref import InstanceRef

    from ace_assets.graph import all_assets
    from ace_neuro.synthetic.project import write_demo_project

    root = Path(tempfile.mkdtemp(prefix="ace-bench-scale-out-"))
    lines = [str(96 + i) for i in range(args.lines)]
    demo = write_demo_project(root / "demo", lines=[int(x) for x in lines], height=args.size, width=args.size,
                              n_frames=args.frames, frames_per_file=max(args.frames // 3, 1), seed=7)
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "cluster.yaml", home / "dagster.yaml")
    keys = sorted({k for a in all_assets() for k in a.keys}, key=lambda k: k.to_user_string())
    started, rows = [], []
    try:
        pg, redis = start_postgres_and_redis(root, started)
        env = cluster_env(pg, redis, home=home, demo=demo, storage=root / "storage")
        set_pool_limit(env, "heavy", 16)
        os.environ.update(pg.env())
        instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        instance.add_dynamic_partitions("experiment_lines", lines)
        dev = DagsterDev(env, root / "dagster_dev.log")
        started.append(dev)
        dev.wait_until_ready()
        print(f"{len(lines)} lines of {args.size}x{args.size}x{args.frames}, {len(keys)} assets each; "
              f"{os.cpu_count()} cores; load average before: {_load()}", flush=True)
        for n in args.workers:
            workers = [celery_worker(f"bench{n}-{i}", env, root / f"celery_{n}_{i}.log") for i in range(n)]
            started.extend(workers)
            wait_for_workers(redis.url, n, workers)
            t0 = time.monotonic()
            backfill = dev.launch_backfill(lines, keys, title=f"scale-out bench, {n} workers")
            status = wait_for(lambda: (s := dev.backfill_status(backfill)) not in ("REQUESTED", "FAILING",
                                                                                    "CANCELING") and s,
                              timeout_s=args.timeout, every_s=1, what=f"the backfill on {n} workers",
                              logs=[dev, *workers])
            wall = time.monotonic() - t0
            runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill}))
            ok = sum(r.status == DagsterRunStatus.SUCCESS for r in runs)
            rows.append((n, wall, status, ok, len(runs), _load()))
            print(f"  {n} worker(s): {wall:.1f} s ({status}, {ok}/{len(runs)} runs succeeded; load average "
                  f"{_load()})", flush=True)
            for w in workers:
                w.stop()
                started.remove(w)
    finally:
        for thing in reversed(started):
            thing.stop()
        shutil.rmtree(root, ignore_errors=True)
    base = rows[0][1] if rows else None
    print("\n| workers | wall s | speed-up | runs ok | load average after (1, 5, 15 min) |\n|---|---|---|---|---|")
    for n, wall, _status, ok, total, load in rows:
        print(f"| {n} | {wall:.1f} | {base / wall:.2f}x | {ok}/{total} | {load} |")
    return 0 if rows and all(ok == total for _, _, _, ok, total, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
