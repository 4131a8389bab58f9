#!/usr/bin/env bash
# Stage 3 of both bundled models (denoise_256.yaml, deblur_256.yaml) side by side on one CUDA
# GPU, as the shipped weights were trained; with PEERS=1 also the NAFNet peers of
# benchmarks/quality.py through the same stage, with the same steps.
#
#   bash configs/bundled/stage3_gpu.sh [MINUTES [KEY=VALUE ...]]
#
# MINUTES: a probe of every run (PROBE_STEPS steps, default 60, side by side as they will run)
# measures the slowest one's step time, and train.steps is set so that they end in about that
# many minutes (at least 50 steps); the configs' `steps` record what ran for the shipped
# weights. Without MINUTES (or with 0): the configs' steps. KEY=VALUE overrides go to every
# run. DENOISE_INIT, DEBLUR_INIT, PEER_DENOISE_INIT and PEER_DEBLUR_INIT replace the stage-2
# weights each run starts from (by default the stage-2 runs under runs/). Runs and their logs
# (<run>.out) go to RUNS_DIR (default runs/).
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-0}
shift || true
kinds=(ours)
[[ ${PEERS:-0} == 1 ]] && kinds+=(peer)
pids=()

launch() {  # launch KIND TASK OUT_DIR LOG [KEY=VALUE ...]
  local kind=$1 task=$2 out=$3 log=$4 init_var init sets=()
  shift 4
  if [[ $kind == ours ]]; then
    init_var=${task^^}_INIT; init=${!init_var:-}
    python3 -m sfhformer train "configs/bundled/${task}_256.yaml" ${init:+train.init_from=$init} \
      out_dir="$out" "$@" >"$log" 2>&1 &
  else
    init_var=PEER_${task^^}_INIT; init=${!init_var:-}
    for kv in ${init:+train.init_from=$init} out_dir="$out" "$@"; do sets+=(--set "$kv"); done
    python3 benchmarks/quality.py --train-peer-stage "${task}_256" --device "${DEVICE:-cuda}" "${sets[@]}" \
      >"$log" 2>&1 &
  fi
  pids+=($!)
}

wait_all() {  # wait for every launched run; on a failure show the ends of the logs
  local pid failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  pids=()
  if ((failed)); then tail -n 5 "$@"; exit 1; fi
}

run_name() { [[ $1 == ours ]] && echo "bundled_${2}_256" || echo "peer_nafnet_${2}_256"; }

runs=${RUNS_DIR:-runs}
probe_steps=${PROBE_STEPS:-60}
mkdir -p "$runs"
steps=()
if [[ $minutes != 0 ]]; then
  probe=$(mktemp -d)
  for kind in "${kinds[@]}"; do for task in denoise deblur; do
    launch "$kind" "$task" "$probe/$kind-$task" "$probe/$kind-$task.out" "$@" \
      train.steps="$probe_steps" log.every=$((probe_steps / 3)) val.every=1000000 checkpoint.every=1000000 \
      resume=false
  done; done
  wait_all "$probe"/*.out
  n=$(python3 - "$probe" "$minutes" <<'PY'
import json, sys
from pathlib import Path
probe, minutes = Path(sys.argv[1]), float(sys.argv[2])
per_step = 0.0
for log in probe.glob("*/log.jsonl"):  # from the first logged step on: start-up excluded
    t = {r["step"]: r["time"] for r in map(json.loads, log.read_text().splitlines()) if "time" in r}
    first, last = min(t), max(t)
    per_step = max(per_step, (t[last] - t[first]) / (last - first))
steps = max(50, int(minutes * 60 * 0.93 / per_step) // 50 * 50)  # 7% for validation and checkpoints
print(f"probe: {per_step:.3f} s/step side by side -> {steps} steps in {minutes} min", file=sys.stderr)
print(steps)
PY
)
  steps=(train.steps="$n")
fi
logs=()
for kind in "${kinds[@]}"; do for task in denoise deblur; do
  name=$(run_name "$kind" "$task")
  launch "$kind" "$task" "$runs/$name" "$runs/$name.out" "$@" "${steps[@]}"
  logs+=("$runs/$name.out")
done; done
wait_all "${logs[@]}"
tail -n 1 "${logs[@]}"
