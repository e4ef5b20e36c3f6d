#!/usr/bin/env bash
# Several training processes on this machine through jax.distributed (what several plain hosts do, each with
# its own --process_id), e.g. 2 processes with 4 CPU devices each:
#   CPU_DEVICES=4 experiments/launch/localhost.sh 2 --config=smoke --workdir=workdir/two_processes
#
# Expects: the number of processes, then the train flags (the same for every process). CPU_DEVICES=N runs each
# process on N forced CPU devices (JAX_PLATFORMS=cpu); without it each process sees this machine's devices.
# PORT chooses the coordinator's port (default 12355). TRAIN is the training command (default `stylegan-jax train`).
# Prints: process 0's lines; every process's lines go to <workdir>/logs/process<i>.log. Exits with the first
# non-zero exit code of the processes (0 when all succeed). Ctrl-C or a SIGTERM reaches every process: they save
# a checkpoint at the same step and stop; running the same command again resumes from it.
set -euo pipefail
processes=${1:?usage: localhost.sh NUM_PROCESSES TRAIN_FLAGS...}
shift
workdir=$(printf '%s\n' "$@" | sed -n 's/^--workdir=//p' | tail -1)
[ -n "$workdir" ] || { echo "localhost.sh: pass --workdir=DIR" >&2; exit 2; }
mkdir -p "$workdir/logs"
if [ -n "${CPU_DEVICES:-}" ]; then
  export JAX_PLATFORMS=cpu XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$CPU_DEVICES"
fi
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' INT TERM
for ((i = 0; i < processes; i++)); do
  ${TRAIN:-stylegan-jax train} --coordinator_address="localhost:${PORT:-12355}" --num_processes="$processes" \
      --process_id="$i" "$@" > "$workdir/logs/process$i.log" 2>&1 &
  pids+=($!)
done
tail -n +1 -f "$workdir/logs/process0.log" --pid="${pids[0]}" &
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { code=$?; [ "$status" != 0 ] || status=$code; }
done
exit "$status"
