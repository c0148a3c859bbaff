#!/usr/bin/env bash
# ncu of one forward kernel in several kernel directories (one launch each, after two warm-up
# launches), on a GPU host: bash bench/ncu_forward.sh KERNEL NAME=DIR... (logs in $OUT)
#   e.g. bash bench/ncu_forward.sh mha_d128 sm90a=.device/k90 sm80=.device/k80
set -uo pipefail
root=$(pwd); out=${OUT:-/tmp/o}; mkdir -p $out
(cmake -S runtime -B build-rt -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build-rt) > $out/build.log 2>&1 || { tail -n 20 $out/build.log; exit 1; }
export ATTNC_RUNTIME_LIB=$root/build-rt/libattnc_runtime.so PYTHONPATH=$root/python
kernel=$1; shift
for pair in "$@"; do
  name=${pair%%=*}; d=${pair#*=}
  timeout 200 ncu --kernel-name regex:"^$kernel\$" --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section Occupancy --section ComputeWorkloadAnalysis \
    --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum \
    python3 bench/launch_once.py "$d" "$kernel" > "$out/ncu-$name.txt" 2>&1
  echo "== $name"; grep -E "Duration|Compute \(SM\) Throughput|hmma|Achieved Occupancy|inst_executed|Issued Ipc|Warp Cycles Per Issued" "$out/ncu-$name.txt" | head -24
done
