#!/usr/bin/env bash
# A Cloud TPU VM pod slice (e.g. v4-32: 4 hosts x 4 chips): the same command on every host, JAX finds the rest.
#   TPU=my-v4-32 ZONE=us-central2-b experiments/launch/tpu_pod.sh --config=ffhq1024 --workdir=/mnt/shared/ffhq
#
# Expects: the repository at ~/stylegan-jax with the package installed (`pip install -e . 'jax[tpu]'`) on every
# host, the prepared dataset and the --workdir on storage every host mounts (e.g. a Filestore NFS share; the run
# log and sample grids are written with plain file I/O, so not a gs:// path). --distributed=gcetpu lets
# jax.distributed.initialize() read the slice's hosts and this host's rank from the TPU metadata.
# Prints: every host's lines, prefixed by gcloud with the worker number. Preemption (spot/preemptible TPUs):
# the hosts get SIGTERM, agree on a step, save a checkpoint there and exit 0; recreate the slice and run the same
# command to resume from it. A lost host stops the others within --heartbeat_timeout seconds (default 100).
set -euo pipefail
: "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE to its zone}"
flags=$(printf ' %q' "$@")
exec gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all \
    --command="cd ~/stylegan-jax && stylegan-jax train --distributed=gcetpu$flags"
