#!/usr/bin/env bash
# Issue #11's GPU check, prepared for a short device lease (15 minutes, the machine's start included): what a
# session with a GPU runs first, in two calls, so that a slow part still leaves the others their results.
#
#   bash experiments/gpu_check.sh --fetch          # here (PyPI reachable): .device/ = wheels + golden outputs
#   bash experiments/gpu_check.sh env golden bench # there, carry ['.device'], timeout_s 390 (at most 6 min)
#   bash experiments/gpu_check.sh fast train       # there, the second call, timeout_s 300 (at most 4.5 min)
#
# Parts (each bounded by `timeout`, in this order; none stops the next; results in $OUT, else ./gpu_check/):
#   env     the device, driver, Python and package versions                        -> env.txt
#   golden  tests/test_golden.py on the GPU: the official outputs at float32        -> golden.log
#   bench   benchmark.py: sampling 1024², training 256² and 1024² in true float32    -> benchmark.md
#   fast    training 1024² and 256² on TF32 tensor cores (+tf32) and in bf16 (+bf16)   -> benchmark_fast.md
#   train   a folder of icons -> prepare -> train 2 kimg (auto config) -> train.log, samples.png
# The targets it measures (issue #11, on an H100-class GPU): 1024² training >= 40 img/s, 256² >= 250 img/s,
# sampling 1024² >= 300 img/s. GPU_CHECK_BENCH / GPU_CHECK_FAST replace the benchmark's row arguments and
# GPU_CHECK_SECONDS multiplies every part's time limit (an integer) and GPU_CHECK_KIMG sets the training length
# (tests/test_gpu_check.py runs the script on a CPU that way).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEVICE_DIR=$ROOT/.device

if [ "${1:-}" = --fetch ]; then
  set -e
  PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  # What the package needs beyond the GPU image's packages (device/KINDS.md lists them): pinned, cp312 wheels.
  rm -rf "$DEVICE_DIR" && mkdir -p "$DEVICE_DIR/wheels" "$DEVICE_DIR/shared"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$DEVICE_DIR/wheels" \
    array-record==0.8.6 dm-tree==0.1.10 docstring-parser==0.18.0 googleapis-common-protos==1.76.0 grain==0.2.18 \
    immutabledict==4.3.1 ml-collections==1.1.0 portpicker==1.6.0 simple-parsing==0.1.9 tensorboardx==2.6.5 \
    tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0 termcolor==3.3.0 toml==0.10.2
  "$PYTHON" -m pip wheel -q --no-deps -w "$DEVICE_DIR/wheels" promise==2.3  # an sdist only; pure Python
  cp -r "${STYLEGAN_SHARED:-$ROOT/../shared}/golden" "$DEVICE_DIR/shared/golden"
  git rev-parse --short HEAD > "$DEVICE_DIR/commit"  # the device machine's copy may have no .git
  echo "ready: $(du -sh "$DEVICE_DIR" | cut -f1) in .device/; on the device machine (carry ['.device']):"
  echo "  bash experiments/gpu_check.sh env golden bench   # timeout_s 390"
  echo "  bash experiments/gpu_check.sh fast train         # timeout_s 300"
  exit 0
fi

parts=("$@")
[ ${#parts[@]} = 0 ] && parts=(env golden bench fast train)
for p in "${parts[@]}"; do
  case "$p" in env|golden|bench|fast|train) ;;
    *) echo "gpu_check.sh: unknown part '$p' (parts: env golden bench fast train; or --fetch)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$ROOT/gpu_check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ -d "$DEVICE_DIR/wheels" ] && ! "$PYTHON" -c 'import ml_collections, grain, tensorflow_datasets' 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_check_site \
    "$DEVICE_DIR"/wheels/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/gpu_check_site
fi
[ -d "$DEVICE_DIR/shared" ] && export STYLEGAN_SHARED=$DEVICE_DIR/shared
SCALE=${GPU_CHECK_SECONDS:-1}
BENCH_ROWS=${GPU_CHECK_BENCH:---sample official:1024@32 --train official:256@64 official:1024@32 --seconds 5}
FAST_ROWS=${GPU_CHECK_FAST:---sample --train official+tf32:1024@32 official+bf16:1024@32 official+tf32:256@64 \
  official+bf16:256@64 --seconds 5}

part() {  # part NAME SECONDS LOG COMMAND: one bounded part, its output to the terminal and to $OUT/LOG
  local name=$1 limit=$(( $2 * SCALE )) log=$OUT/$3 start=$SECONDS
  echo "== $name (at most ${limit} s) -> $log"
  timeout --kill-after=10 "$limit" bash -c "$4" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]} verdict
  case "$rc" in 0) verdict=ok ;; 124) verdict="stopped at ${limit} s" ;; *) verdict="failed ($rc)" ;; esac
  echo "== $name: $verdict in $(( SECONDS - start )) s" | tee -a "$OUT/parts.txt"
}

env_part() {
  cat "$DEVICE_DIR/commit" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo 'commit unknown'
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  else echo 'no nvidia-smi'; fi
  "$PYTHON" - <<'PY'
import importlib.metadata as md, platform, jax
print('python', platform.python_version(), '| devices', jax.devices())
for name in ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'ml-collections', 'grain',
             'tensorflow-datasets'):
  try: print(name, md.version(name))
  except md.PackageNotFoundError: print(name, 'missing')
PY
}

train_part() {
  local work=/tmp/gpu_check_train
  rm -rf "$work" && mkdir -p "$work" &&
  "$PYTHON" experiments/make_image_folder.py "$work/icons" --count 300 &&
  (cd "$work" && "$PYTHON" -m stylegan_jax.cli prepare --source_dir=icons --resolution=64) &&
  (cd "$work" && "$PYTHON" -m stylegan_jax.cli train \
     --data=data/stylegan_image_folder/icons-64px-3ch-center-nolabels/1.0.0 --workdir=run \
     --config.train.total_kimg=${GPU_CHECK_KIMG:-2} --config.metrics.names='()') &&
  cp "$(ls -t "$work"/run/samples/*.png | head -1)" "$OUT/samples.png"
}
export -f env_part train_part
export DEVICE_DIR OUT PYTHON

for p in "${parts[@]}"; do
  case "$p" in
    env) part env 60 env.txt env_part ;;
    golden) part golden 60 golden.log "$PYTHON -m pytest -q -p no:cacheprovider tests/test_golden.py" ;;
    bench) part bench 240 benchmark.md "$PYTHON experiments/benchmark.py $BENCH_ROWS" ;;
    fast) part fast 150 benchmark_fast.md "$PYTHON experiments/benchmark.py $FAST_ROWS" ;;
    train) part train 120 train.log train_part ;;
  esac
done
