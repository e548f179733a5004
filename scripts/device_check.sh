#!/usr/bin/env bash
# The GPU checks, as one prepared run on a lent GPU machine (no network there). What it carries and does:
#
#   prepare here:  bash scripts/device_check.sh --prepare    (wheels the machine lacks -> .whl/, MNIST -> .device/)
#   run there:     bash scripts/device_check.sh              (with .whl and .device carried; results in $OUT)
#
# The machine's image has python3 3.12 with torch, numpy, scipy, pandas, scikit-learn, seaborn, statsmodels,
# jinja2 and pytest; it lacks optuna, pyro-ppl, sqlalchemy, alembic, Mako, colorlog, platformdirs, typer >= 0.29
# (with pydantic), rich 15 and optuna-dashboard, which travel as wheels (pinned to what .venv has). The code is
# imported from the working tree (crossgen -> cgi/crossgen/ through a symlink), so nothing is built there.
#
# Steps, each under its own time limit so that a slow or failing one leaves the others' results in $OUT:
#   1. bench.json    ablate bench --device cuda --json --paper (epochs, CGI overhead, stacked vs unstacked at quick
#                    and paper fidelity, Table 2 at paper fidelity with 10 seeds): alone on the GPU, for timings
#   2. pytest.log    the CUDA tests (tests/ablate/execution/test_cuda.py, the CUDA test of tests/crossgen/test_stack.py)
#   3. paper.db      the four-case paper-fidelity experiment (scripts/experiments.py paper-four, 10 seeds)
#   4. eq-cuda.csv   the CUDA arm of the equivalence study (scripts/equivalence.py, quick fidelity, 20 seeds)
#   3 and 4 run side by side with 2. Knobs for a dry run on a CPU: DEVICE=cpu PAPER_FIDELITY=smoke EQ_FIDELITY=smoke
#   SEEDS=2 BENCH_ARGS="--quick" LIMIT_S=...
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${1:-}" = "--prepare" ]; then
    rm -rf .whl && mkdir -p .whl .device
    pins=""
    for name in optuna pyro-ppl pyro-api sqlalchemy alembic Mako colorlog platformdirs typer rich pydantic \
        pydantic_core annotated-types typing-inspection annotated-doc typing_extensions optuna-dashboard bottle; do
        version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))") || exit 1
        pins="$pins $name==$version"
    done
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl $pins || exit 1
    # the MNIST cache, recompressed (the same arrays; np.load reads either) to fit the 64 MiB that travels
    .venv/bin/python -c "
import numpy as np
from crossgen.data import default_data_dir
with np.load(default_data_dir() / 'mnist.npz') as z:
    np.savez_compressed('.device/mnist.npz', **{k: z[k] for k in z.files})" || exit 1
    du -sh .whl .device
    exit 0
fi

OUT=${OUT:-$ROOT/.device/out}
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
PAPER_FIDELITY=${PAPER_FIDELITY:-paper}
EQ_FIDELITY=${EQ_FIDELITY:-quick}
SEEDS=${SEEDS:-10}
EQ_SEEDS=${EQ_SEEDS:-20}
BENCH_ARGS=${BENCH_ARGS:---quick --paper}
LIMIT_S=${LIMIT_S:-570}
STEPS=${STEPS:-bench tests paper eq}  # also: table2 (Table 2 at paper fidelity alone, TABLE2_WORKERS workers)
TABLE2_WORKERS=${TABLE2_WORKERS:-4}
want() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
PY=${PY:-python3}
START=$(date +%s)
left() { echo $((LIMIT_S - ($(date +%s) - START))); }
say() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/log.txt"; }

if [ -d .whl ] && [ -z "${SKIP_WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >>"$OUT/log.txt" 2>&1 || { say "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
mkdir -p /tmp/gp && ln -sfn "$ROOT/cgi/crossgen" /tmp/gp/crossgen && ln -sfn "$ROOT/ablate" /tmp/gp/ablate \
    && ln -sfn "$ROOT/studies" /tmp/gp/ablate_studies
export PYTHONPATH=/tmp/gp${PYTHONPATH:+:$PYTHONPATH} ABLATE_DATA_DIR=$ROOT/.device PYTHONUNBUFFERED=1
export ABLATE_STUDIES_DIR=$ROOT/studies

ablate() { $PY -m ablate.cli "$@"; }
{
    nvidia-smi -L 2>&1 || true
    $PY -c "import torch, optuna, pyro, typer; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'optuna', optuna.__version__, 'pyro', \
pyro.__version__, 'typer', typer.__version__)"
} 2>&1 | tee -a "$OUT/log.txt"

if want bench; then
    say "1. bench ($BENCH_ARGS), alone on the device"
    # shellcheck disable=SC2086
    timeout $(($(left) - 290)) $PY -m ablate.cli bench --device "$DEVICE" --json $BENCH_ARGS --out "$OUT/bench.json" \
        >/dev/null 2>>"$OUT/log.txt"
    say "bench exit $?"
fi
if want table2; then
    say "Table 2 at $PAPER_FIDELITY fidelity, 10 seeds, $TABLE2_WORKERS workers, stacked, alone on the device"
    timeout $(($(left) - 60)) $PY -c "import json, sys; from ablate.methods.cgi import bench; from ablate.experiment.presets import load_fidelity
s = bench.table2_seconds(load_fidelity('$PAPER_FIDELITY'), device='$DEVICE', workers=$TABLE2_WORKERS)
print(json.dumps({'table2_paper_seconds': s, 'table2_paper_workers': $TABLE2_WORKERS}))" >"$OUT/table2.json" \
        2>>"$OUT/log.txt"
    say "table2 exit $?: $(cat "$OUT/table2.json")"
fi

PAPER=""
EQ=""
if want paper; then
say "3. four-case paper-fidelity experiment ($PAPER_FIDELITY, $SEEDS seeds), in the background"
timeout $(($(left) - 15)) $PY scripts/experiments.py paper-four --fidelity "$PAPER_FIDELITY" --seeds "$SEEDS" \
    --workers 4 --storage "sqlite:///$OUT/paper.db" --device "$DEVICE" >"$OUT/paper.log" 2>&1 &
PAPER=$!
fi
if want eq; then
# a carried .device/eq-cuda.csv resumes: only the runs it lacks are made
[ -f .device/eq-cuda.csv ] && cp .device/eq-cuda.csv "$OUT/eq-cuda.csv"
say "4. equivalence, CUDA arm ($EQ_FIDELITY, $EQ_SEEDS seeds), in the background"
timeout $(($(left) - 15)) $PY scripts/equivalence.py run --arm "$DEVICE-stacked" --stack on --device "$DEVICE" \
    --seeds "$EQ_SEEDS" --fidelity "$EQ_FIDELITY" --out "$OUT/eq-cuda.csv" >>"$OUT/log.txt" 2>&1 &
EQ=$!
fi

if want tests; then
    say "2. CUDA tests"
    timeout $(($(left) - 30)) $PY -m pytest -q -p no:cacheprovider \
        tests/ablate/execution/test_cuda.py tests/crossgen/test_stack.py -k cuda -rs >"$OUT/pytest.log" 2>&1
    say "pytest exit $?: $(tail -n 1 "$OUT/pytest.log")"
fi

[ -n "$EQ" ] && { wait "$EQ"; say "equivalence exit $?"; }
if [ -n "$PAPER" ]; then
    wait "$PAPER"
    say "paper-four exit $? ($(grep -c 'ablation' "$OUT/paper.log") commands started)"
    tail -n 5 "$OUT/paper.log" >>"$OUT/log.txt"
fi
say "done"
