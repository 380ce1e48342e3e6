#!/usr/bin/env bash
# Builds a `dexed_presets` config with Apache Beam through TFDS's `tfds build`: on this
# machine's cores (DirectRunner) or on Google Cloud Dataflow. Either way the result is an
# array_record dataset, the format `s2s_jax.data.reader` and training read.
# `launch/build_dataset_beam.sh --help` lists the flags; `--dry_run` prints the commands.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: launch/build_dataset_beam.sh --runner=direct --config=NAME --output=DIR
           [--presets=DIR|gs://...] [--max_workers=N] [--dry_run]
       launch/build_dataset_beam.sh --runner=dataflow --config=NAME --output=gs://BUCKET/PATH
           --presets=DIR|gs://... --project=PROJECT --region=REGION [--temp_location=gs://...]
           [--max_workers=32] [--machine_type=n2-standard-8] [--dry_run]

Writes OUTPUT/dexed_presets/CONFIG/1.0.0/ (array_record), the data_dir to train from:
`--config.data_dir=OUTPUT` (after copying it to local disk where OUTPUT is gs://).

direct    `tfds build` with Beam's portable runner (what DirectRunner runs batch pipelines
          on), one worker process per core, straight into OUTPUT (a local folder).
dataflow  ArrayRecord cannot write to gs://, so: `tfds build` on Dataflow writes TFRecord
          to TEMP_LOCATION/tfds_tfrecord, this machine copies it to a local temp folder,
          converts it (`tfds convert_format`) to array_record, uploads it to OUTPUT
          and deletes the TFRecord copy.
          Workers get this project as a wheel (built here, passed as extra_package) and
          TensorFlow (for TFRecord files) from PyPI at start-up. A custom worker image
          with both installed starts faster: add sdk_container_image=IMAGE through
          BEAM_OPTIONS (e.g. BEAM_OPTIONS=sdk_container_image=us-docker.pkg.dev/P/R/s2s:1).
Planning (reading the presets, drawing the voices) runs here, so presets on gs:// are
copied to a local temp folder first; the voices travel inside the pickled Beam job.

  --runner=direct|dataflow  where the pipeline runs (default direct)
  --config=NAME          tiny, alg01..alg32, all, all_light (required)
  --presets=DIR|gs://    folder of .syx presets (every config but tiny needs it)
  --output=DIR|gs://     data_dir to write: a local folder (direct) or gs:// (dataflow) (required)
  --project=PROJECT      Google Cloud project (dataflow)
  --region=REGION        Dataflow region, e.g. us-central1 (dataflow)
  --temp_location=gs://  Dataflow temp and staging files (default OUTPUT/tmp)
  --max_workers=N        Dataflow max_num_workers (default 32); direct: worker processes
                         (default: all cores)
  --machine_type=TYPE    Dataflow worker machine type (default n2-standard-8)
  --dry_run              print the commands, one per line, and run nothing
  --help                 this text

Needs the [build] extra (`pip install -e ".[build]"`: tfds's command line, TensorFlow, Beam).
Environment: BEAM_OPTIONS, more comma-separated Beam pipeline options; PYTHON (default
python); TMPDIR, where the local temp folder goes (dataflow: it holds the dataset twice).
EOF
}

SCRIPT=build_dataset_beam.sh
# shellcheck source=launch/lib.sh
source "$REPO/launch/lib.sh"

RUNNER=direct CONFIG="" PRESETS="" OUTPUT="" PROJECT="" REGION="" TEMP_LOCATION=""
MAX_WORKERS="" MACHINE_TYPE=n2-standard-8
PYTHON=${PYTHON:-python}
BEAM_OPTIONS=${BEAM_OPTIONS:-}
parse_flags() {
  while (($#)); do
    case $1 in
      --runner=*) RUNNER=$(value --runner "${1#*=}") ;;
      --config=*) CONFIG=$(value --config "${1#*=}") ;;
      --presets=*) PRESETS=$(value --presets "${1#*=}") ;;
      --output=*) OUTPUT=$(value --output "${1#*=}") ;;
      --project=*) PROJECT=$(value --project "${1#*=}") ;;
      --region=*) REGION=$(value --region "${1#*=}") ;;
      --temp_location=*) TEMP_LOCATION=$(value --temp_location "${1#*=}") ;;
      --max_workers=*) MAX_WORKERS=$(value --max_workers "${1#*=}") ;;
      --machine_type=*) MACHINE_TYPE=$(value --machine_type "${1#*=}") ;;
      --dry_run) DRY_RUN=1 ;;
      --help | -h) usage; exit 0 ;;
      --runner | --config | --presets | --output | --project | --region | --temp_location \
        | --max_workers | --machine_type) die 2 "$1 needs a value: $1=VALUE" ;;
      *) die 2 "unknown flag $1 (see --help)" ;;
    esac
    shift
  done
}

check_flags() {
  [[ -n $CONFIG ]] || die 2 "--config is required"
  [[ -n $OUTPUT ]] || die 2 "--output is required"
  [[ -z $MAX_WORKERS || $MAX_WORKERS =~ ^[1-9][0-9]*$ ]] \
    || die 2 "--max_workers must be a positive integer, got $MAX_WORKERS"
  [[ $CONFIG == tiny || -n $PRESETS ]] || die 2 "--presets is required for --config=$CONFIG"
  if [[ -n $PRESETS && $PRESETS != gs://* && ! -d $PRESETS ]]; then
    die 2 "--presets: $PRESETS is not a folder"
  fi
  OUTPUT=${OUTPUT%/}
  case $RUNNER in
    direct)
      # ArrayRecord writes local files only (google/array_record#120).
      [[ $OUTPUT != gs://* ]] \
        || die 2 "--output must be a local folder with --runner=direct (gs://: --runner=dataflow)"
      MAX_WORKERS=${MAX_WORKERS:-$(nproc)} ;;
    dataflow)
      [[ $OUTPUT == gs://* ]] || die 2 "--output must be a gs:// path with --runner=dataflow"
      [[ -n $PROJECT ]] || die 2 "--project is required with --runner=dataflow"
      [[ -n $REGION ]] || die 2 "--region is required with --runner=dataflow"
      TEMP_LOCATION=${TEMP_LOCATION:-$OUTPUT/tmp}
      TEMP_LOCATION=${TEMP_LOCATION%/}
      [[ $TEMP_LOCATION == gs://* ]] || die 2 "--temp_location must be a gs:// path"
      MAX_WORKERS=${MAX_WORKERS:-32} ;;
    *) die 2 "--runner must be direct or dataflow, got $RUNNER" ;;
  esac
}

STAGE=""
make_stage() {  # a local temp folder for presets, the wheel and the converted dataset
  if ((DRY_RUN)); then
    STAGE=${TMPDIR:-/tmp}/s2s_jax_build.DRY_RUN
    echo "# $STAGE: a temporary folder (mktemp -d)"
  else
    STAGE=$(mktemp -d)
    trap 'rm -rf "$STAGE"' EXIT
  fi
}

LOCAL_PRESETS=""
stage_presets() {  # sets LOCAL_PRESETS: the builder reads presets from local paths only
  LOCAL_PRESETS=$PRESETS
  if [[ $PRESETS == gs://* ]]; then
    LOCAL_PRESETS=$STAGE/presets
    run mkdir -p "$LOCAL_PRESETS"
    run gcloud storage rsync -r "$PRESETS" "$LOCAL_PRESETS"
  fi
}

tfds_build() {  # tfds_build DATA_DIR FORMAT BEAM_OPTIONS
  local build=(tfds build "$REPO/datasets/dexed_presets" "--config=$CONFIG" "--data_dir=$1"
               "--file_format=$2" "--beam_pipeline_options=$3${BEAM_OPTIONS:+,$BEAM_OPTIONS}")
  if [[ -n $LOCAL_PRESETS ]]; then build+=("--manual_dir=$LOCAL_PRESETS"); fi
  run "${build[@]}"
}

build_direct() {
  # Beam's DirectRunner first tries Prism, which downloads a binary from GitHub; FnApiRunner
  # is what it falls back to for batch pipelines: named here, it also runs offline.
  tfds_build "$OUTPUT" array_record "runner=apache_beam.runners.portability.fn_api_runner.FnApiRunner,\
direct_num_workers=$MAX_WORKERS,direct_running_mode=multi_processing"
}

WHEEL=""
build_wheel() {  # sets WHEEL: Dataflow workers install this project from it
  local version
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n 1)
  # From a copy: building in the checkout would leave build/ and egg-info behind.
  run mkdir -p "$STAGE/src"
  run cp -R "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/s2s_jax" "$STAGE/src/"
  run "$PYTHON" -m pip wheel -q --no-deps -w "$STAGE/dist" "$STAGE/src"
  WHEEL=$STAGE/dist/s2s_jax-$version-py3-none-any.whl
  if ! ((DRY_RUN)) && [[ ! -f $WHEEL ]]; then die 1 "no wheel at $WHEEL"; fi
}

REQUIREMENTS=""
worker_requirements() {  # sets REQUIREMENTS: TFDS writes TFRecord files with TensorFlow
  local requirement
  requirement=$(grep -o '"tensorflow-cpu[^"]*"' "$REPO/pyproject.toml" | tr -d '"')
  REQUIREMENTS=$STAGE/requirements.txt
  run "$PYTHON" -c "import sys; open(sys.argv[1], \"w\").write(sys.argv[2] + \"\\n\")" \
    "$REQUIREMENTS" "$requirement"
}

build_dataflow() {
  local staging=$TEMP_LOCATION/tfds_tfrecord
  local version_dir=dexed_presets/$CONFIG/1.0.0
  local local_dir=$STAGE/tensorflow_datasets/$version_dir
  build_wheel
  worker_requirements
  tfds_build "$staging" tfrecord "runner=DataflowRunner,project=$PROJECT,region=$REGION,\
temp_location=$TEMP_LOCATION,max_num_workers=$MAX_WORKERS,machine_type=$MACHINE_TYPE,\
extra_package=$WHEEL,requirements_file=$REQUIREMENTS,requirements_cache=skip"
  run mkdir -p "$local_dir"
  run gcloud storage rsync -r "$staging/$version_dir" "$local_dir"
  # In place: TFDS 4.9's `convert_format --out_dir` writes no dataset_info.json (and its
  # thread pool hides that error unless --num_workers=1).
  run tfds convert_format "--dataset_version_dir=$local_dir" --out_file_format=array_record \
    --num_workers=1
  # In place leaves tfrecord the main format and array_record an alternative; training
  # opens the dataset as array_record, so make that the main one.
  run "$PYTHON" -c "import sys; from tensorflow_datasets.core import dataset_info as d; \
i = d.read_proto_from_builder_dir(sys.argv[1]); i.file_format = \"array_record\"; \
del i.alternative_file_formats[:]; d.write_dataset_info_proto(i, dataset_info_dir=sys.argv[1])" \
    "$local_dir"
  run gcloud storage rsync -r '--exclude=.*\.tfrecord-.*' "$local_dir" "$OUTPUT/$version_dir"
  run gcloud storage rm -r "$staging/$version_dir"
}

main() {
  parse_flags "$@"
  check_flags
  make_stage
  stage_presets
  if [[ $RUNNER == direct ]]; then build_direct; else build_dataflow; fi
}

main "$@"
