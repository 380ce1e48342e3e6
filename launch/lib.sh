# Shared by the launch scripts (sourced, not run): errors, quoting and the dry-run switch.
# The sourcing script sets SCRIPT (its name, for messages) first.
# shellcheck shell=bash

die() {  # die CODE MESSAGE: the message on stderr, then exit
  echo "${SCRIPT:-launch}: $2" >&2
  exit "$1"
}

quote() {  # the arguments as one shell line: 'single quotes' where needed (no newlines)
  local arg out=() q="'"
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+=("$arg")
    else
      out+=("'${arg//$q/$q\\$q$q}'")
    fi
  done
  printf '%s' "${out[*]}"
}

DRY_RUN=0
run() {  # prints the command, quoted to paste; runs it unless --dry_run
  if ((DRY_RUN)); then
    printf '%s\n' "$(quote "$@")"
  else
    printf '+ %s\n' "$(quote "$@")" >&2
    "$@"
  fi
}

value() {  # value FLAG VALUE: VALUE, or exit 2 naming FLAG when it is empty
  [[ -n $2 ]] || die 2 "$1 needs a value"
  printf '%s' "$2"
}
