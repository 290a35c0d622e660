#!/usr/bin/env bash
# Regenerate the reference values of the MSR reproductions (tarnawski2020/, archer2024/) by running
# the artifact's own programs on the repository's copy of the workloads, and keep their raw output.
#
# The artifact, github.com/msr-fiddle/dnn-partitioning (MIT), is not part of this repository: check it
# out at the commit the workloads come from and pass its folder:
#
#   dir=$(mktemp -d) && git clone https://github.com/msr-fiddle/dnn-partitioning "$dir/dnn-partitioning"
#   git -C "$dir/dnn-partitioning" checkout b207b6ad27a1407d321f1e028cea96d7f2c90e3e
#   paper_reproductions/tarnawski2020/artifact/run_artifact_dp.sh "$dir/dnn-partitioning"
#
# What it runs (every command line is written to logs/commands.txt, every result to logs/summary.tsv,
# each program's standard output and error to logs/<case>.out and logs/<case>.err):
#   * build: g++ -O3 -std=c++17 throughput-dp/dp.cpp (it includes the artifact's ../nlohmann/json.hpp;
#     a system copy of nlohmann/json is used instead when the checkout lacks it, see logs/commands.txt);
#   * Tarnawski et al.: dp < throughput-inputs/LayerGraphs/<w>_inference.json (the contiguous optimum
#     over pipelines, the files unchanged: 6 accelerators and 1 CPU), dp -expert
#     human-experts/<w>_inference_expert.json (the expert split's max-load) and dp -pipeDream (its
#     PipeDream baseline), for w in bert24, gnmt, resnet50, inceptionv3;
#   * Archer et al.: dp < throughput-inputs/OperatorGraphs/<g>_inference.json with the one input
#     transformation maxFPGAs = k, maxCPUs = 0 (every other field unchanged), for g in bert_l-3,
#     bert_l-6, bert_l-12, resnet50 and k in 2, 4, 8, 16.
# Each run is limited to LIMIT_S seconds (default 600) and MEM_KB of memory (default 8 GiB): the DP on
# Inception-v3 enumerates 36,596 down-sets and runs out of either.
set -u -o pipefail
ARTIFACT=${1:?usage: run_artifact_dp.sh ARTIFACT_CHECKOUT [DATA_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DATA=${2:-$ROOT/instances/third_party/msr-dnn-partitioning}
LIMIT_S=${LIMIT_S:-600}
MEM_KB=${MEM_KB:-8388608}
PYTHON=${PYTHON:-python3}
LOGS=$HERE/logs
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
# show TEXT: TEXT without the machine's paths (the repository root, the temporary build folder).
show() {
  local text=${1//"$ROOT"\//}
  echo "${text//"$BUILD"\//}"
}

mkdir -p "$LOGS"
: > "$LOGS/commands.txt"
printf 'case\tcommand\texit\twall_s\tresult\n' > "$LOGS/summary.tsv"

{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(nproc) cores; $(g++ --version | head -1)"
  echo "# artifact commit: $(git -C "$ARTIFACT" rev-parse HEAD 2>/dev/null || echo "${ARTIFACT_COMMIT:-unknown (not a git checkout)}"); throughput-dp/dp.cpp: $(wc -c < "$ARTIFACT/throughput-dp/dp.cpp") bytes, sha256 $(sha256sum "$ARTIFACT/throughput-dp/dp.cpp" | cut -d' ' -f1)"
  echo "# data: $(show "$DATA")"
} >> "$LOGS/commands.txt"

if [ ! -f "$ARTIFACT/nlohmann/json.hpp" ]; then
  # dp.cpp includes "../nlohmann/json.hpp" relative to itself: give it a system copy.
  mkdir -p "$BUILD/src/throughput-dp" "$BUILD/src/nlohmann"
  cp "$ARTIFACT/throughput-dp/dp.cpp" "$BUILD/src/throughput-dp/dp.cpp"
  cp /usr/include/nlohmann/json.hpp "$BUILD/src/nlohmann/json.hpp"
  SRC=$BUILD/src/throughput-dp/dp.cpp
  echo "# nlohmann/json: the system's $(grep -m1 -o 'version [0-9.]*' /usr/include/nlohmann/json.hpp || echo copy) (not in the checkout)" >> "$LOGS/commands.txt"
else
  SRC=$ARTIFACT/throughput-dp/dp.cpp
fi
echo "g++ -O3 -std=c++17 -o dp throughput-dp/dp.cpp" >> "$LOGS/commands.txt"
g++ -O3 -std=c++17 -o "$BUILD/dp" "$SRC" || { echo "build failed" >&2; exit 2; }

# run CASE INPUT_JSON [DP_ARGS...]: dp < INPUT_JSON, logged.
run() {
  local case=$1 input=$2; shift 2
  echo "$(show "dp $* < $input")   # $case" >> "$LOGS/commands.txt"
  local t0 t1 code result
  t0=$(date +%s.%N)
  (ulimit -v "$MEM_KB"; timeout "$LIMIT_S" "$BUILD/dp" "$@" < "$input" > "$LOGS/$case.out" 2> "$LOGS/$case.err")
  code=$?
  t1=$(date +%s.%N)
  # The result: the DP's maxLoad (standard output, JSON), or the max-load -expert prints on standard error.
  result=$("$PYTHON" - "$LOGS/$case.out" "$LOGS/$case.err" <<'PY'
import json, re, sys
out, err = (open(p).read() for p in sys.argv[1:3])
try:
    print(repr(json.loads(out)["maxLoad"]))
except (ValueError, KeyError):
    m = re.search(r"max-load of the split: (\S+)", err)
    print(m.group(1) if m else "none")
PY
)
  printf '%s\t%s\t%s\t%.3f\t%s\n' "$case" "$(show "dp $* < $input")" "$code" "$(echo "$t1 - $t0" | bc)" "$result" >> "$LOGS/summary.tsv"
  echo "$case: exit $code, $result" >&2
}

for w in bert24 gnmt resnet50 inceptionv3; do
  layer=$DATA/throughput-inputs/LayerGraphs/${w}_inference.json
  run "layer_${w}_expert" "$layer" -expert "$DATA/human-experts/${w}_inference_expert.json"
  run "layer_${w}_pipedream" "$layer" -pipeDream
  run "layer_${w}_dp" "$layer"
done

for g in bert_l-3 bert_l-6 bert_l-12 resnet50; do
  for k in 2 4 8 16; do
    input=$BUILD/${g}_k${k}.json
    "$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); d["maxFPGAs"] = int(sys.argv[2]); d["maxCPUs"] = 0; json.dump(d, open(sys.argv[3], "w"))' \
      "$DATA/throughput-inputs/OperatorGraphs/${g}_inference.json" "$k" "$input"
    echo "# ${g}_k${k}.json: OperatorGraphs/${g}_inference.json with maxFPGAs = $k, maxCPUs = 0" >> "$LOGS/commands.txt"
    run "operator_${g}_k${k}_dp" "$input"
  done
done
