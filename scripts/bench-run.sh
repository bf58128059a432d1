#!/usr/bin/env bash
# Benchmarks `quadriga run` against xargs -P and GNU parallel, and `-j auto`
# against a sweep of fixed -j. A measurement, not a test: it prints a table,
# writes bench-results/run.json, and says which goals were met; it fails only
# if something could not run.
#
#   (a) 1,000 × `true` at the same width (nproc): wall time quadriga / xargs
#       (goal ≤ 1.15), GNU parallel / quadriga (goal ≥ 5), and the runner's
#       own CPU time per job (its getrusage, children excluded; goal ≤ 0.1 ms).
#       Reported by mean and by best run: on a shared machine the best run is
#       the one least disturbed by others.
#   (b) -j auto vs -j 1 2 4 8 16 32 64 on a CPU-bound workload (sha256sum of
#       20 MB files), an I/O-bound one (sleep 0.2 × 200) and loopback HTTP
#       downloads with 100 ms of latency: auto within 90% of the best fixed
#       -j on each, and ≥ 5× faster than -j nproc on the I/O-bound ones. The
#       settings run in rounds (interleaved) and each keeps its best round.
#
# Installs GNU parallel and hyperfine from Debian's packages when missing.
# About 4 to 5 minutes on 2 cores once quadriga is built (-j 1 and -j 2 of
# the I/O-bound workloads alone take a minute: they run once). Environment knobs:
# RUNS (timed runs of fast commands, default 5), SWEEP (default
# "1 2 4 8 16 32 64"), FILES (CPU-bound files, default 16), SKIP_HTTP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${RUNS:-5}
SWEEP=${SWEEP:-"1 2 4 8 16 32 64"}
FILES=${FILES:-16}
NPROC=$(nproc)

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools"
need=()
command -v parallel >/dev/null || need+=(parallel)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y "${need[@]}" >&2 ||
        { $SUDO apt-get update >&2 && $SUDO apt-get install -y "${need[@]}" >&2; }
fi
PY=$(command -v python3)
parallel --version | head -1 >&2
hyperfine --version >&2

step "build quadriga (release)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -p quadriga-cli >&2
Q=$CARGO_TARGET_DIR/release/quadriga

WORK=$(mktemp -d "${TMPDIR:-/tmp}/quadriga-bench.XXXXXX")
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$ROOT/bench-results"

# hyperfine_mean RUNS NAME COMMAND: mean seconds, and keeps the JSON. No
# warm-up run: the inputs are in the page cache already, and the sweeps are
# what takes the time.
hyperfine_mean() {
    local runs=$1 name=$2 cmd=$3
    hyperfine -N --style none --runs "$runs" \
        --export-json "$WORK/hf-$name.json" "$cmd" >/dev/null 2>&1 ||
        { echo "failed: $cmd" >&2; return 1; }
    "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' \
        "$WORK/hf-$name.json"
}

# ---------------------------------------------------------------- (a)
step "(a) 1000 × true at -j $NPROC: quadriga, xargs -P, GNU parallel"
seq 1000 >"$WORK/thousand"
hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/overhead.json" \
    -n "quadriga run -j $NPROC" "$Q run -j $NPROC true :::: $WORK/thousand" \
    -n "xargs -P $NPROC" "xargs -P $NPROC -n 1 -a $WORK/thousand true" \
    -n "parallel -j $NPROC" "parallel --will-cite -j $NPROC true :::: $WORK/thousand" >&2

# The runner's own CPU (getrusage of itself, not of its children), from -v.
: >"$WORK/cpu"
for _ in $(seq "$RUNS"); do
    "$Q" run -v -j "$NPROC" true :::: "$WORK/thousand" 2>&1 >/dev/null |
        sed -n 's/.*runner CPU \([0-9.]*\) ms.*/\1/p' >>"$WORK/cpu"
done

# For comparison, where perf works: each runner's own task-clock (perf stat
# --no-inherit counts the process itself, not its children), xargs included.
: >"$WORK/taskclock"
if command -v perf >/dev/null && perf stat --no-inherit -e task-clock -x, -o /dev/null true 2>/dev/null; then
    for _ in $(seq "$RUNS"); do
        perf stat --no-inherit -e task-clock -x, -o "$WORK/pq" \
            "$Q" run -j "$NPROC" true :::: "$WORK/thousand" >/dev/null 2>&1
        perf stat --no-inherit -e task-clock -x, -o "$WORK/px" \
            xargs -P "$NPROC" -n 1 -a "$WORK/thousand" true >/dev/null 2>&1
        echo "$(grep task-clock "$WORK/pq" | cut -d, -f1) $(grep task-clock "$WORK/px" | cut -d, -f1)" >>"$WORK/taskclock"
    done
fi

# ---------------------------------------------------------------- (b)
step "(b) -j auto vs fixed -j: CPU-bound (sha256sum of $FILES × 20 MB)"
mkdir "$WORK/files"
for i in $(seq "$FILES"); do
    head -c 20000000 /dev/urandom >"$WORK/files/f$i"
done
cat "$WORK"/files/* >/dev/null # in the page cache, like every run after
ls "$WORK"/files/* >"$WORK/filelist"
: >"$WORK/sweep"

# sweep KIND SLOWEST COMMAND: three rounds over every -j (JOBS in COMMAND),
# auto included, one timed run per setting per round, so that the machine's
# load, which drifts, falls on all settings alike. Settings up to -j SLOWEST
# take many seconds; they run in the first round only.
sweep() {
    local kind=$1 slow=$2 cmd=$3 round j t
    for round in 1 2 3; do
        for j in $SWEEP auto; do
            if [ "$round" -gt 1 ] && [ "$j" != auto ] && [ "$j" -le "$slow" ]; then
                continue
            fi
            t=$(hyperfine_mean 1 "$kind-$j-$round" "${cmd//JOBS/$j}")
            echo "$kind $j $t" | tee -a "$WORK/sweep" >&2
        done
    done
}

sweep cpu 0 "$Q run -j JOBS sha256sum :::: $WORK/filelist"

step "(b) I/O-bound: sleep 0.2 × 200"
seq 200 >"$WORK/two-hundred"
sweep sleep 8 "$Q run -j JOBS -N0 sleep 0.2 :::: $WORK/two-hundred"

if [ "${SKIP_HTTP:-0}" != 1 ]; then
    step "(b) I/O-bound: 200 downloads from a loopback server with 100 ms latency"
    cat >"$WORK/server.py" <<'EOF'
import http.server, socketserver, sys, time
BODY = b"x" * 16384
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 512
srv = Server(("127.0.0.1", 0), Slow)
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
    "$PY" "$WORK/server.py" >"$WORK/port" &
    SERVER_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    PORT=$(cat "$WORK/port")
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/warm"
    sweep http 4 "$Q run -j JOBS curl -sf -o /dev/null http://127.0.0.1:$PORT/{} :::: $WORK/two-hundred"
fi

# ---------------------------------------------------------------- report
step "report"
"$PY" - "$WORK" "$NPROC" "$ROOT/bench-results/run.json" <<'EOF'
import json, os, platform, statistics, sys, time
work, nproc, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = json.load(open(os.path.join(work, "overhead.json")))["results"]
by = {}
for r in res:
    key = "quadriga" if r["command"].startswith("quadriga") else r["command"].split(" ")[0]
    by[key] = r
mean = {k: by[k]["mean"] for k in by}
best = {k: by[k]["min"] for k in by}
cpu = [float(l) for l in open(os.path.join(work, "cpu")) if l.strip()]
cpu_med = statistics.median(cpu) / 1000 if cpu else float("nan")
cpu_min = min(cpu) / 1000 if cpu else float("nan")
tc = [tuple(map(float, l.split())) for l in open(os.path.join(work, "taskclock")) if len(l.split()) == 2]
perf_q = statistics.median(t[0] for t in tc) / 1000 if tc else None
perf_x = statistics.median(t[1] for t in tc) / 1000 if tc else None
ratio = lambda d: (d["quadriga"] / d["xargs"], d["parallel"] / d["quadriga"])
(qx_mean, pq_mean), (qx_best, pq_best) = ratio(mean), ratio(best)
overhead = {
    "jobs": 1000, "width": nproc,
    "runs": {k: by[k]["times"] for k in by},
    "mean_s": mean, "stddev_s": {k: by[k]["stddev"] for k in by}, "best_s": best,
    "quadriga_over_xargs": {"mean": qx_mean, "best": qx_best},
    "parallel_over_quadriga": {"mean": pq_mean, "best": pq_best},
    "runner_cpu_ms_per_job": {"median": cpu_med, "best": cpu_min, "runs": cpu},
    "perf_task_clock_ms_per_job": {"quadriga": perf_q, "xargs": perf_x},
    "goals": {"quadriga_over_xargs_le_1.15": {"mean": qx_mean <= 1.15, "best": qx_best <= 1.15},
              "parallel_over_quadriga_ge_5": {"mean": pq_mean >= 5, "best": pq_best >= 5},
              "runner_cpu_per_job_le_0.1ms": {"median": cpu_med <= 0.1, "best": cpu_min <= 0.1}},
}
runs = {}
for line in open(os.path.join(work, "sweep")):
    kind, j, t = line.split()
    runs.setdefault(kind, {}).setdefault(j, []).append(float(t))
auto = {}
for kind, s in runs.items():
    fixed = {j: min(ts) for j, ts in s.items() if j != "auto"}
    best_j = min(fixed, key=fixed.get)
    a = min(s["auto"])
    entry = {"runs_s": s, "best_of_rounds_s": {**fixed, "auto": a},
             "best_fixed_j": int(best_j), "best_fixed_s": fixed[best_j],
             "auto_share_of_best": fixed[best_j] / a,
             "auto_share_of_best_by_mean": statistics.mean(s[best_j]) / statistics.mean(s["auto"])}
    entry["goals"] = {"auto_ge_90pct_of_best": entry["auto_share_of_best"] >= 0.9}
    if kind in ("sleep", "http") and str(nproc) in fixed:
        entry["speedup_over_nproc"] = fixed[str(nproc)] / a
        entry["goals"]["auto_ge_5x_nproc"] = entry["speedup_over_nproc"] >= 5
    auto[kind] = entry
doc = {"suite": "run", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
       "machine": {"nproc": nproc, "kernel": platform.release(),
                   "loadavg_at_end": open("/proc/loadavg").read().split()[:3]},
       "overhead": overhead, "auto": auto}
json.dump(doc, open(out, "w"), indent=2)

ok = lambda b: "yes" if b else "NO"
print()
print(f"(a) 1000 x true at -j {nproc}: {len(by['quadriga']['times'])} timed runs each")
print(f"  {'runner':<22}{'mean s':>9}{'± s':>8}{'best s':>9}")
for k in ("quadriga", "xargs", "parallel"):
    r = by[k]
    print(f"  {r['command'][:21]:<22}{r['mean']:>9.3f}{r['stddev']:>8.3f}{r['min']:>9.3f}")
print(f"  quadriga / xargs      mean {qx_mean:5.2f}  best {qx_best:5.2f}   goal <= 1.15: {ok(qx_mean <= 1.15)} / {ok(qx_best <= 1.15)}")
print(f"  parallel / quadriga   mean {pq_mean:5.2f}  best {pq_best:5.2f}   goal >= 5:    {ok(pq_mean >= 5)} / {ok(pq_best >= 5)}")
print(f"  runner CPU per job    median {cpu_med:.3f} ms  best {cpu_min:.3f} ms   goal <= 0.1 ms: {ok(cpu_med <= 0.1)} / {ok(cpu_min <= 0.1)}")
if perf_q is not None:
    print(f"  own task-clock per job (perf, children excluded): quadriga {perf_q:.3f} ms, xargs {perf_x:.3f} ms")
print()
cols = sorted({j for s in runs.values() for j in s if j != "auto"}, key=int)
print("(b) wall seconds by -j, best of the rounds (best fixed marked *)")
print(f"  {'workload':<10}" + "".join(f"{'-j ' + j:>9}" for j in cols) + f"{'auto':>9}{'auto/best':>11}{'vs nproc':>10}")
names = {"cpu": "sha256", "sleep": "sleep0.2", "http": "http100ms"}
for kind, e in auto.items():
    cells = ""
    for j in cols:
        t = e["best_of_rounds_s"].get(j)
        mark = "*" if int(j) == e["best_fixed_j"] else " "
        cells += f"{t:>8.2f}{mark}" if t is not None else f"{'-':>9}"
    vs = f"{e['speedup_over_nproc']:>9.1f}x" if "speedup_over_nproc" in e else f"{'':>10}"
    print(f"  {names.get(kind, kind):<10}{cells}{e['best_of_rounds_s']['auto']:>9.2f}{e['auto_share_of_best']:>10.0%} {vs}")
print()
for kind, e in auto.items():
    gs = ", ".join(f"{g}: {ok(v)}" for g, v in e["goals"].items())
    print(f"  {names.get(kind, kind)}: {gs} (auto/best by mean of rounds: {e['auto_share_of_best_by_mean']:.0%})")
print(f"\nJSON: {out}")
EOF
