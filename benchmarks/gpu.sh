#!/usr/bin/env bash
# The GPU check: kidney, heart and pneumonia trained at their recipes' own image size for a fixed time,
# then `evaluate` and `inspect --no-app` on each, all on the GPU, in under 8 minutes on one H200.
# The figures go to benchmarks/results/gpu.json and RESULTS.md ("Full-size trainings (GPU)").
#
#   bash benchmarks/gpu.sh                     # from the repo root; data in $YOLO_TOOLS_DATA or ../shared/data
#   TRAIN_MINUTES="3 2 3" BUDGET_SECONDS=900 bash benchmarks/gpu.sh   # longer trainings (kidney heart pneumonia)
#   DRY_RUN=1 bash benchmarks/gpu.sh           # print the commands only (what tests/test_gpu_script.py checks)
#
# Each step is one `yolo_tools` command as a user types it, with a time limit of its own, so a stuck step
# cannot eat the others' time; a failed step is recorded (exit code, log) and the next one still runs.
# The whole check keeps to BUDGET_SECONDS (default 460, i.e. under 8 minutes with the summary): a step is
# cut at what is left of it, and steps past it are recorded as skipped, so the figures always get written.
set -u -o pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
RECIPES=(kidney heart pneumonia)
read -r -a MINUTES <<< "${TRAIN_MINUTES:-1 0.75 1}"  # per recipe, in the order above: 2.75 minutes in all
BUDGET=${BUDGET_SECONDS:-460}
DEVICE=${DEVICE:-0}
NAME=gpu-full
WORK=${YOLO_TOOLS_BENCH_WORK:-benchmarks/results/work}/gpu
export YOLO_TOOLS_DATASETS=${YOLO_TOOLS_DATASETS:-$WORK/datasets}
export YOLO_TOOLS_RUNS=$WORK/runs  # always its own folder: it is emptied at the start
[ -z "${YOLO_TOOLS_DATA:-}" ] && [ -d shared/data ] && export YOLO_TOOLS_DATA=$PWD/shared/data
TIMINGS=$WORK/timings.tsv

# One step: run it under a time limit, log it, and append "recipe step seconds exit-code" to $TIMINGS
# (exit code 124: cut by its time limit; "skipped": the budget was spent before it started).
step() {
  local recipe=$1 what=$2 limit=$3
  shift 3
  if [ -n "${DRY_RUN:-}" ]; then
    echo "$*"
    return 0
  fi
  local left=$((BUDGET - SECONDS))
  if [ "$left" -le 5 ]; then
    printf '%s\t%s\t0\tskipped\n' "$recipe" "$what" >> "$TIMINGS"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local started=$SECONDS code=0
  echo "== $recipe: $what ($*)"
  timeout "$limit" "$@" > "$WORK/logs/$recipe-$what.log" 2>&1 || code=$?
  printf '%s\t%s\t%s\t%s\n' "$recipe" "$what" "$((SECONDS - started))" "$code" >> "$TIMINGS"
  tail -n 3 "$WORK/logs/$recipe-$what.log"
}

if [ -z "${DRY_RUN:-}" ]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no GPU: this check trains at full size and needs one")' || exit 1
  rm -rf "$WORK/runs" "$WORK/logs" "$TIMINGS"
  mkdir -p "$WORK/logs"
fi

for i in "${!RECIPES[@]}"; do
  recipe=${RECIPES[$i]}
  hours=$(awk "BEGIN { printf \"%.4f\", ${MINUTES[$i]} / 60 }")
  train_limit=$(awk "BEGIN { printf \"%d\", ${MINUTES[$i]} * 60 + 150 }")  # the budget, startup and final validation
  step "$recipe" convert 120 "$PY" -m yolo_tools convert "recipes/$recipe.yaml"
  # time= (hours) stops the training when it is spent; epochs then only caps it. The final validation follows.
  step "$recipe" train "$train_limit" "$PY" -m yolo_tools train "recipes/$recipe.yaml" --name "$NAME" \
    "time=$hours" "device=$DEVICE" workers=8 plots=True
  step "$recipe" evaluate 120 "$PY" -m yolo_tools evaluate "$YOLO_TOOLS_RUNS/$recipe/$NAME" "device=$DEVICE"
  step "$recipe" inspect 180 "$PY" -m yolo_tools inspect "$YOLO_TOOLS_RUNS/$recipe/$NAME" --no-app --worst 5 "device=$DEVICE"
done

[ -n "${DRY_RUN:-}" ] && exit 0
"$PY" -m benchmarks.gpu --runs "$YOLO_TOOLS_RUNS" --timings "$TIMINGS" --name "$NAME" --minutes "${MINUTES[*]}"
"$PY" -m benchmarks.report
