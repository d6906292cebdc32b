#!/usr/bin/env bash
# gmvae-np launcher, in the habit of the original code's run.sh.
#
#   ./run.sh test [--gpu] [--slow] [--thorough] [pytest args]   the test suite
#   ./run.sh spiral [--backend cupy] [options]                    an experiment (see ./run.sh list)
#   ./run.sh bench [options]                                      the training-step benchmark
#   ./run.sh gpu-check [--quick] [--steps ...] [--data-dir DIR]   on a GPU machine: tests, benchmark, runs, one report
#   ./run.sh plot RUN_DIR [--follow]                              redraw a run's figures
#
# On first use it creates .venv (unless a virtual environment is already active, or .venv exists)
# and installs the project with its test extras from PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

setup_env() {
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        PY="$VIRTUAL_ENV/bin/python"
    else
        if [ ! -x .venv/bin/python ]; then
            py=$(command -v python3 || command -v python || true)
            [ -n "$py" ] || { echo "error: no python3 found; install Python >= 3.10" >&2; exit 2; }
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
                || { echo "error: Python >= 3.10 is needed, found $("$py" --version 2>&1)" >&2; exit 2; }
            echo "run.sh: creating .venv (first use)" >&2
            "$py" -m venv .venv
        fi
        PY="$here/.venv/bin/python"
    fi
    # Install (or refresh) the project when it is not importable from this environment.
    if ! "$PY" -c 'import autograd_lite, gmvae_np, hypothesis, array_api_strict, pytest, sklearn, threadpoolctl, distributed, genieclust' >/dev/null 2>&1; then
        echo "run.sh: installing gmvae-np and its test dependencies into $(dirname "$(dirname "$PY")")" >&2
        "$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
        "$PY" -m pip install --quiet -e ".[test]"
    fi
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
    help|-h|--help) usage ;;
    test)
        setup_env
        args=()
        for a in "$@"; do
            case "$a" in
                --gpu) args+=(-m gpu) ;;
                --slow) args+=(--runslow) ;;
                --thorough) export HYPOTHESIS_PROFILE=thorough ;;
                *) args+=("$a") ;;
            esac
        done
        export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
        exec "$PY" -m pytest "${args[@]+"${args[@]}"}"
        ;;
    bench)
        setup_env
        exec "$PY" benchmarks/bench_step.py "$@"
        ;;
    gpu-check)
        # A lent GPU machine often has the project installed into its own Python and no network: use a
        # Python that imports the project already, and set up .venv only when there is none.
        if [ -z "${VIRTUAL_ENV:-}" ] && [ ! -x .venv/bin/python ] \
                && python3 -c 'import autograd_lite, gmvae_np' >/dev/null 2>&1; then
            PY=python3
        else
            setup_env
        fi
        exec "$PY" benchmarks/gpu_check.py "$@"
        ;;
    plot)
        setup_env
        exec "$PY" experiments/plot.py "$@"
        ;;
    list)
        ls experiments/*.py | xargs -n1 basename | sed 's/\.py$//' | grep -v '^plot$' | tr '_' '-'
        ;;
    *)
        script="experiments/$(echo "$cmd" | tr '-' '_').py"
        if [ ! -f "$script" ]; then
            echo "error: unknown command '$cmd'; choose test, bench, gpu-check, plot or an experiment: $(./run.sh list | tr '\n' ' ')" >&2
            exit 2
        fi
        setup_env
        exec "$PY" "$script" "$@"
        ;;
esac
