#!/usr/bin/env bash
# The whole test suite: set-up, build, then every unit and integration test
# (integration tests start their own Pebble, upstreams and edged on loopback);
# then the hardening stages: the whole suite again under ASan+UBSan, the
# multi-threaded tests under TSan, and every fuzz target for 60 s.
#   EDGE_TEST_STAGES="main asan tsan fuzz" (default: all of them, as CI runs)
#   EDGE_FUZZ_SECONDS=60
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
stages="${EDGE_TEST_STAGES:-main asan tsan fuzz}"
"$root/scripts/setup.sh"
started=$SECONDS
stage() { echo "== test.sh: $1 ($(( (SECONDS - started) / 60 )) min so far)" >&2; }
for s in $stages; do
  case "$s" in
    main)
      stage "build and the whole suite"
      "$root/scripts/build.sh"
      (cd "$root/build" && ctest --output-on-failure --timeout 600 -j "$(nproc)") ;;
    asan) stage "ASan+UBSan: the whole suite"; "$root/scripts/sanitize" asan ;;
    tsan) stage "TSan: the multi-threaded tests"; "$root/scripts/sanitize" tsan ;;
    fuzz) stage "fuzzing, ${EDGE_FUZZ_SECONDS:-60} s per target"; "$root/scripts/fuzz" "${EDGE_FUZZ_SECONDS:-60}" ;;
    *) echo "test.sh: unknown stage $s" >&2; exit 2 ;;
  esac
done
stage "done"
