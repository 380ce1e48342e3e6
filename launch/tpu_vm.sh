#!/usr/bin/env bash
# Trains SOUND2SYNTH on a Cloud TPU VM slice (one or many hosts): creates the slice or reuses
# it, ships this checkout to every worker, installs it, puts the dataset on each worker's
# local disk and starts `python -m s2s_jax.main --multihost` on all workers at once.
# `launch/tpu_vm.sh --help` lists the flags; `--dry_run` prints the commands instead.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON_VERSION=${PYTHON_VERSION:-3.11}  # the workers' Python (uv fetches it)

usage() {
  cat <<'EOF'
Usage: launch/tpu_vm.sh --name=NAME --zone=ZONE --workdir=gs://BUCKET/PATH
           (--dataset=gs://BUCKET/tensorflow_datasets | --presets=gs://BUCKET/presets)
           [--type=v5litepod-16] [--version=RUNTIME] [--project=PROJECT] [--spot]
           [--config=configs/t6.py:full] [--dataset_config=alg01] [--detach] [--dry_run]
           [-- MAIN_FLAGS...]

Creates the TPU VM slice NAME (or reuses it when READY; a preempted one is deleted and
created again), copies this checkout to every worker (`git archive` of HEAD: commit what
you want to ship), installs it with jax[tpu] into ~/s2s_venv, copies or builds the dataset
on every worker's local disk, then runs on all workers
  python -m s2s_jax.main --multihost --config=CONFIG --workdir=WORKDIR
      --config.data_dir=$HOME/tensorflow_datasets --config.dataset_config=DATASET_CONFIG MAIN_FLAGS
Running the same command again after a preemption resumes from the latest checkpoint.

  --name=NAME            TPU VM name (required)
  --zone=ZONE            zone, e.g. us-west4-a (required)
  --type=TYPE            accelerator type, e.g. v5litepod-16, v4-32, v6e-16 (default v5litepod-16)
  --version=RUNTIME      TPU runtime version (default from --type: v2-alpha-tpuv6e,
                         v2-alpha-tpuv5-lite, v2-alpha-tpuv5 or tpu-ubuntu2204-base)
  --project=PROJECT      Google Cloud project (default: gcloud's configured one)
  --spot                 create a Spot TPU (cheaper; preemptible)
  --workdir=gs://...     checkpoints and summaries; must be on Cloud Storage (required)
  --config=FILE[:VAR]    training config (default configs/t6.py:full)
  --dataset_config=NAME  dexed_presets config: tiny, alg01..alg32, all, all_light (default alg01)
  --dataset=gs://...     a data_dir holding the built array_record dataset (e.g. from
                         launch/build_dataset_beam.sh); every worker copies it
  --presets=gs://...     a folder of .syx presets; every worker copies it and builds the
                         dataset itself (deterministic: all workers get the same data)
                         Exactly one of --dataset and --presets (neither: only for tiny).
  --detach               train in the background on every worker (log: ~/s2s_train.log)
                         instead of streaming the output here until training ends
  --dry_run              print the commands, one per line, and run nothing
  --help                 this text
  -- MAIN_FLAGS          passed on to s2s_jax.main, e.g. -- --config.num_epochs=10

Environment: PYTHON_VERSION, the workers' Python (default 3.11).
EOF
}

SCRIPT=tpu_vm.sh
# shellcheck source=launch/lib.sh
source "$REPO/launch/lib.sh"

NAME="" ZONE="" TYPE="v5litepod-16" VERSION="" PROJECT="" SPOT=0 WORKDIR=""
CONFIG="configs/t6.py:full" DATASET_CONFIG="alg01" DATASET="" PRESETS="" DETACH=0
MAIN_FLAGS=()
parse_flags() {
  while (($#)); do
    case $1 in
      --name=*) NAME=$(value --name "${1#*=}") ;;
      --zone=*) ZONE=$(value --zone "${1#*=}") ;;
      --type=*) TYPE=$(value --type "${1#*=}") ;;
      --version=*) VERSION=$(value --version "${1#*=}") ;;
      --project=*) PROJECT=$(value --project "${1#*=}") ;;
      --spot) SPOT=1 ;;
      --workdir=*) WORKDIR=$(value --workdir "${1#*=}") ;;
      --config=*) CONFIG=$(value --config "${1#*=}") ;;
      --dataset_config=*) DATASET_CONFIG=$(value --dataset_config "${1#*=}") ;;
      --dataset=*) DATASET=$(value --dataset "${1#*=}") ;;
      --presets=*) PRESETS=$(value --presets "${1#*=}") ;;
      --detach) DETACH=1 ;;
      --dry_run) DRY_RUN=1 ;;
      --help | -h) usage; exit 0 ;;
      --) shift; MAIN_FLAGS=("$@"); return ;;
      --name | --zone | --type | --version | --project | --workdir | --config | --dataset_config \
        | --dataset | --presets) die 2 "$1 needs a value: $1=VALUE" ;;
      *) die 2 "unknown flag $1 (see --help)" ;;
    esac
    shift
  done
}

check_flags() {
  [[ -n $NAME ]] || die 2 "--name is required"
  [[ -n $ZONE ]] || die 2 "--zone is required"
  [[ -n $WORKDIR ]] || die 2 "--workdir is required"
  # Every worker writes checkpoints to the one workdir: only a bucket is shared by all.
  [[ $WORKDIR == gs://* ]] || die 2 "--workdir must be a gs:// path (all workers share it), got $WORKDIR"
  if [[ -n $DATASET && -n $PRESETS ]]; then
    die 2 "give one of --dataset and --presets, not both"
  fi
  if [[ -z $DATASET && -z $PRESETS && $DATASET_CONFIG != tiny ]]; then
    die 2 "give one of --dataset and --presets (only --dataset_config=tiny needs neither)"
  fi
  # Workers cannot see this machine's files: their data comes from a bucket.
  [[ -z $DATASET || $DATASET == gs://* ]] || die 2 "--dataset must be a gs:// path, got $DATASET"
  [[ -z $PRESETS || $PRESETS == gs://* ]] || die 2 "--presets must be a gs:// path, got $PRESETS"
  if [[ -z $VERSION ]]; then
    case $TYPE in
      v6e*) VERSION=v2-alpha-tpuv6e ;;
      v5litepod* | v5e*) VERSION=v2-alpha-tpuv5-lite ;;
      v5p*) VERSION=v2-alpha-tpuv5 ;;
      *) VERSION=tpu-ubuntu2204-base ;;
    esac
  fi
}

tpu() {  # tpu VERB ARGS...: `gcloud compute tpus tpu-vm VERB ARGS --zone=ZONE [--project=...]`
  local args=(gcloud compute tpus tpu-vm "$@" "--zone=$ZONE")
  if [[ -n $PROJECT ]]; then args+=("--project=$PROJECT"); fi
  run "${args[@]}"
}

on_all_workers() {  # on_all_workers COMMAND: runs the shell COMMAND on every worker at once
  tpu ssh "$NAME" --worker=all "--command=$1"
}

preflight() {  # the data is where the flags say, before paying for a slice
  if [[ -n $DATASET ]]; then
    run gcloud storage ls "${DATASET%/}/dexed_presets/$DATASET_CONFIG/1.0.0/dataset_info.json"
  elif [[ -n $PRESETS ]]; then
    run gcloud storage ls "$PRESETS"
  fi
}

ensure_slice() {
  local create=("--accelerator-type=$TYPE" "--version=$VERSION"
                --scopes=https://www.googleapis.com/auth/cloud-platform)
  if ((SPOT)); then create+=(--spot); fi
  if ((DRY_RUN)); then
    echo "# create the slice unless 'describe' finds it READY (PREEMPTED: delete, then create)"
    tpu describe "$NAME" "--format=value(state)"
    tpu create "$NAME" "${create[@]}"
    return
  fi
  local state
  state=$(tpu describe "$NAME" "--format=value(state)" 2>/dev/null) || state=MISSING
  case $state in
    READY) echo "tpu_vm.sh: reusing TPU VM $NAME" >&2 ;;
    MISSING) tpu create "$NAME" "${create[@]}" ;;
    # Spot and preemptible slices cannot be restarted, only created again.
    PREEMPTED | TERMINATED) tpu delete "$NAME" --quiet; tpu create "$NAME" "${create[@]}" ;;
    *) die 1 "TPU VM $NAME is $state: run again when it is READY (or delete it)" ;;
  esac
}

ship_package() {  # a tarball of the checkout (configs/ included), unpacked as ~/s2s_jax
  local stage=${TMPDIR:-/tmp}/s2s_jax_launch.$$
  local tarball=$stage/s2s_jax.tar.gz
  run mkdir -p "$stage"
  if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then
      echo "tpu_vm.sh: note: uncommitted changes are not shipped (git archive HEAD)" >&2
    fi
    run git -C "$REPO" archive --format=tar.gz --prefix=s2s_jax/ -o "$tarball" HEAD
  else
    run tar -czf "$tarball" -C "$REPO" --transform=s,^,s2s_jax/, --exclude=__pycache__ \
      pyproject.toml README.md configs datasets s2s_jax
  fi
  tpu scp "$tarball" "$NAME:s2s_jax.tar.gz" --worker=all
  if ! ((DRY_RUN)); then rm -rf "$stage"; fi
}

install_package() {
  # TPU runtimes come with Ubuntu's Python 3.10; uv fetches the Python the project needs.
  on_all_workers "set -e; rm -rf s2s_jax; tar -xzf s2s_jax.tar.gz; \
python3 -m pip install -q --user uv || python3 -m pip install -q --user --break-system-packages uv; \
~/.local/bin/uv venv -q --allow-existing --python=$PYTHON_VERSION ~/s2s_venv; \
~/.local/bin/uv pip install -q --python=\$HOME/s2s_venv/bin/python 'jax[tpu]' './s2s_jax[cloud]'"
}

stage_dataset() {  # the dataset on every worker's local disk: ArrayRecord reads local files only
  local config
  config=$(quote "$DATASET_CONFIG")
  if [[ -n $DATASET ]]; then
    on_all_workers "set -e; mkdir -p \$HOME/tensorflow_datasets/dexed_presets/$config; \
gcloud storage rsync -r $(quote "${DATASET%/}/dexed_presets/$DATASET_CONFIG") \
\$HOME/tensorflow_datasets/dexed_presets/$config"
    return
  fi
  # A no-op where the dataset is already built (a rerun on the same slice).
  local build="\$HOME/s2s_venv/bin/python -m s2s_jax.data.build --config=$config \
--data_dir=\$HOME/tensorflow_datasets"
  if [[ -n $PRESETS ]]; then
    # The builder reads presets from local paths only. Rendering is deterministic, so every
    # worker builds the same examples.
    on_all_workers "set -e; mkdir -p s2s_presets; gcloud storage rsync -r $(quote "$PRESETS") \
s2s_presets; $build --manual_dir=s2s_presets"
  else
    on_all_workers "$build"
  fi
}

train() {
  local flags=(--multihost "--config=$CONFIG" "--workdir=$WORKDIR")
  local more=("--config.dataset_config=$DATASET_CONFIG" "${MAIN_FLAGS[@]}")
  # Compiled programs cached beside the checkpoints: a restarted run skips compiling.
  local command
  command="cd s2s_jax && env JAX_COMPILATION_CACHE_DIR=$(quote "${WORKDIR%/}/jax_cache") \
\$HOME/s2s_venv/bin/python -m s2s_jax.main $(quote "${flags[@]}") \
--config.data_dir=\$HOME/tensorflow_datasets $(quote "${more[@]}")"
  if ((DETACH)); then
    # nohup, no terminal: training outlives this ssh session.
    command="${command/ env / nohup env } > ~/s2s_train.log 2>&1 < /dev/null &"
  fi
  on_all_workers "$command"
  if ((DETACH)); then
    echo "# training in the background; follow worker 0 with"
    echo "#   gcloud compute tpus tpu-vm ssh $NAME --zone=$ZONE --command='tail -f s2s_train.log'"
  fi
}

main() {
  parse_flags "$@"
  check_flags
  preflight
  ensure_slice
  ship_package
  install_package
  stage_dataset
  train
}

main "$@"
