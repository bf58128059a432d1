"""Peers of the `data` suite: the same group-by, end to end (read the CSV,
group, aggregate), in pandas, Dask dataframe (threads or processes), Polars
and DuckDB.

    python data_peers.py ENGINE QUERY FILE THREADS REPS

QUERY is `q1` (sum of v1 by id1) or `q2` (sum of v1 and mean of v3 by id3).
Prints one JSON object: the seconds of each repetition, and a check of the
answer (groups, total of the v1 sums, total of the v3 means) for the bench to
compare with Quadriga's.
"""

import json
import os
import sys
import time


def run_pandas(query, path, threads):
    import pandas as pd

    if query == "q1":
        df = pd.read_csv(path, usecols=["id1", "v1"])
        r = df.groupby("id1").v1.sum()
        return len(r), int(r.sum()), 0.0
    df = pd.read_csv(path, usecols=["id3", "v1", "v3"])
    r = df.groupby("id3").agg(v1=("v1", "sum"), v3=("v3", "mean"))
    return len(r), int(r.v1.sum()), float(r.v3.sum())


def run_dask(query, path, threads, scheduler):
    import dask
    import dask.dataframe as dd

    with dask.config.set(scheduler=scheduler, num_workers=threads):
        if query == "q1":
            df = dd.read_csv(path, usecols=["id1", "v1"])
            r = df.groupby("id1").v1.sum().compute()
            return len(r), int(r.sum()), 0.0
        df = dd.read_csv(path, usecols=["id3", "v1", "v3"])
        r = df.groupby("id3").agg({"v1": "sum", "v3": "mean"}).compute()
        return len(r), int(r.v1.sum()), float(r.v3.sum())


def run_polars(query, path, threads):
    import polars as pl

    if query == "q1":
        r = pl.scan_csv(path).group_by("id1").agg(pl.col("v1").sum()).collect()
        return r.height, int(r["v1"].sum()), 0.0
    r = (
        pl.scan_csv(path)
        .group_by("id3")
        .agg(pl.col("v1").sum(), pl.col("v3").mean())
        .collect()
    )
    return r.height, int(r["v1"].sum()), float(r["v3"].sum())


def run_duckdb(query, path, threads):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    src = f"read_csv('{path}', header = true)"
    if query == "q1":
        rows = con.execute(f"SELECT id1, sum(v1) AS v1 FROM {src} GROUP BY id1").fetchall()
        return len(rows), int(sum(r[1] for r in rows)), 0.0
    rows = con.execute(
        f"SELECT id3, sum(v1), avg(v3) FROM {src} GROUP BY id3"
    ).fetchall()
    return len(rows), int(sum(r[1] for r in rows)), float(sum(r[2] for r in rows))


def main():
    engine, query, path, threads, reps = sys.argv[1:6]
    threads, reps = int(threads), int(reps)
    # Polars reads its thread count from the environment when it is imported.
    os.environ["POLARS_MAX_THREADS"] = str(threads)
    runs = {
        "pandas": lambda: run_pandas(query, path, threads),
        "dask_threads": lambda: run_dask(query, path, threads, "threads"),
        "dask_processes": lambda: run_dask(query, path, threads, "processes"),
        "polars": lambda: run_polars(query, path, threads),
        "duckdb": lambda: run_duckdb(query, path, threads),
    }
    run = runs[engine]
    # Imports are not timed: pandas, Dask and Polars take seconds to load.
    imports = {
        "pandas": ["pandas"],
        "dask_threads": ["pandas", "dask.dataframe"],
        "dask_processes": ["pandas", "dask.dataframe"],
        "polars": ["polars"],
        "duckdb": ["duckdb"],
    }
    for module in imports[engine]:
        __import__(module)
    times = []
    check = None
    for _ in range(reps):
        start = time.perf_counter()
        check = run()
        times.append(time.perf_counter() - start)
    groups, v1_total, v3_means_total = check
    print(
        json.dumps(
            {
                "engine": engine,
                "query": query,
                "times_s": times,
                "groups": groups,
                "v1_total": v1_total,
                "v3_means_total": v3_means_total,
            }
        )
    )


if __name__ == "__main__":
    main()
