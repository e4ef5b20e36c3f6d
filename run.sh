#!/usr/bin/env bash
# The README's entry points. Each sets everything up first (venv, pip, Debian packages), then:
#   ./run.sh train [flags]     progressive training of the Fashion-MNIST 32x32 quickstart
#   ./run.sh test [pytest args]  the default test suite (what CI runs); `./run.sh test-all` adds the slow tests
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
FMNIST=/usr/share/datasets/fashion-mnist

apt_install() {
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  local stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    touch "$stamp"
  fi
  [ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || apt_install dataset-fashion-mnist
}

cmd=${1:-}
shift || true
case "$cmd" in
  train)
    setup
    "$VENV/bin/stylegan-jax" prepare --config=default  # into ./data; instant once done
    # two CPU devices, one step split data-parallel: 1.3x faster than one on 2 cores (no effect on a GPU)
    "$VENV/bin/stylegan-jax" train --config=default --workdir="${WORKDIR:-workdir/quickstart}" --cpu_devices=2 "$@"
    ;;
  test)
    setup
    command -v ffmpeg >/dev/null || apt_install --no-install-recommends ffmpeg  # the MP4 interpolation test
    # two workers, each test file on one (its module fixtures built once): 891 s on 2 cores (README "Tests");
    # `-n 0` after it runs the suite in one process
    "$VENV/bin/python" -m pytest -m 'not slow' -n "${TEST_WORKERS:-2}" --dist loadfile --durations=20 "$@"
    ;;
  test-all)
    setup
    command -v ffmpeg >/dev/null || apt_install --no-install-recommends ffmpeg
    "$VENV/bin/python" -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
    ;;
  *)
    echo "usage: $0 {train|test|test-all} [args]" >&2
    exit 2
    ;;
esac
