#!/usr/bin/env bash
# The GPU check (issue 18): what a freshly lent GPU machine should confirm, in at most
# 8 minutes, written to ONE markdown report.
#
#   bash benchmarks/gpu_check.sh [--smoke] [--out FILE] [--logs DIR]
#
#   --out FILE   the report (default benchmarks/gpu_report.md)
#   --logs DIR   each step's full log, steps.tsv and the grading JSON (default: a new
#                temporary folder, named at the end)
#   --smoke      on a CPU: the same steps with the GPUs hidden, to prove the wiring. The
#                gpu-marked tests are collected and skipped, grading takes one small task,
#                each benchmark runs its own --smoke. No number in it is a GPU measurement.
#   PYTHON=...   the interpreter (default .venv/bin/python, else python3)
#
# Steps, each under its own `timeout`; a step that fails is recorded and the next one runs:
#   1    facts            driver, GPUs, torch/triton versions, CUDA
#   2-5  at the same time (correctness only, the GPU shared):
#        gpu_tests        every gpu-marked test, hidden and public (pytest -m gpu)
#        gpu_mutants      the wrong solutions only compiled kernels show (tests/test_catalogue.py)
#        grade_reference  `grader grade --reference`: must be full marks
#        grade_stubs      `grader grade --submission .` (the stubs in assignments/): must be 0
#   6-9  one at a time, nothing else on the machine: the benchmarks of FlashAttention (fp16
#        and bf16), quantization, DDP on NCCL (1 rank and, with more GPUs, all), LoRA
# No step may run past BUDGET_S seconds from the start (a step that would start later is
# skipped), so the whole check ends within 8 minutes. Exit status: 0 when every step
# passed, 1 otherwise; the report is written either way (benchmarks/gpu_report.py).
set -u
export LC_ALL=C PYTHONUNBUFFERED=1

smoke="" out="benchmarks/gpu_report.md" logs=""
while (( $# )); do
    case $1 in
        --smoke) smoke=1 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        --logs) logs=${2:?--logs needs a folder}; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
out=$(realpath -m "$out")
logs=$(realpath -m "${logs:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}")
mkdir -p "$logs" && rm -f "$logs/steps.tsv"
cd "$(dirname "$0")/.." || exit 2
py=${PYTHON:-.venv/bin/python}
[[ -z ${PYTHON:-} && ! -x $py ]] && py=python3

# Time limits (seconds). GPU: 20 + 210 + 120 + 50 + 30 + 20 = 450 for the steps, under a
# BUDGET_S of 465 that none may pass, and the report: within the 8 minutes.
if [[ -n $smoke ]]; then
    BUDGET_S=300 FACTS_S=60 CHECKS_S=150 FLASH_S=60 QUANT_S=60 DDP_S=60 LORA_S=60
    export CUDA_VISIBLE_DEVICES="" TRITON_INTERPRET=1   # a CPU run wherever it runs
else
    BUDGET_S=465 FACTS_S=20 CHECKS_S=210 FLASH_S=120 QUANT_S=50 DDP_S=30 LORA_S=20
    unset TRITON_INTERPRET                              # compiled kernels, not the interpreter
fi

# step ID LIMIT COMMAND...: run COMMAND under `timeout` (never past BUDGET_S), its output
# in $logs/ID.log, and append "ID, exit status, seconds, limit, command" to steps.tsv.
step() {
    local id=$1 limit=$2 left=$((BUDGET_S - SECONDS)) start=$EPOCHREALTIME rc seconds
    shift 2
    if (( left < 5 )); then
        printf '%s\tskipped\t0\t%s\t%s\n' "$id" "$limit" "$*" >> "$logs/steps.tsv"
        echo "[${SECONDS}s] $id: skipped, out of time"
        return
    fi
    (( limit > left )) && limit=$left
    echo "[${SECONDS}s] $id: started (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" > "$logs/$id.log" 2>&1 < /dev/null &
    echo $! > "$logs/$id.pid"
    wait $!
    rc=$?
    rm -f "$logs/$id.pid"
    seconds=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")
    printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$rc" "$seconds" "$limit" "$*" >> "$logs/steps.tsv"
    echo "[${SECONDS}s] $id: exit $rc after $seconds s"
}
# The report, from whatever the steps left in $logs; its exit status: 0 if all passed.
report() {
    "$py" benchmarks/gpu_report.py write "$logs" "$out" ${smoke:+--smoke} \
        --budget "$BUDGET_S" --wall "$SECONDS"
    local status=$?
    echo "logs: $logs"
    echo "report: $out"
    return $status
}

# Ctrl-C or TERM: stop the steps running (`timeout` passes TERM on to its command's
# group), then report what finished.
stop() {
    local pid_file
    trap - INT TERM
    for pid_file in "$logs"/*.pid; do
        [[ -e $pid_file ]] && kill -TERM "$(< "$pid_file")" 2> /dev/null
    done
    wait
    echo "gpu_check: interrupted" >&2
    report
    exit 130
}
trap stop INT TERM

# 1. The machine.
facts=(--require-gpu)   # a GPU check on a machine without a GPU says so at the top
[[ -n $smoke ]] && facts=()
step facts "$FACTS_S" "$py" benchmarks/gpu_report.py facts "$logs/facts.json" "${facts[@]}"
gpus=$("$py" -c "import json, sys; print(json.load(open(sys.argv[1]))['gpu_count'])" \
       "$logs/facts.json" 2> /dev/null || echo 0)

# 2-5. Correctness, all four at once (the benchmarks come after, on an idle GPU).
per_test=()   # pytest-timeout, where installed (the dev extra has it): one hang costs 90 s
"$py" -c "import pytest_timeout" 2> /dev/null && per_test=(--timeout 90)
# GPU: everything, and the grader stops itself before the step's limit (its JSON complete).
# Smoke: one small task (the whole of quantization's public tests where `grade` has no --task).
scope=(--total-budget $((CHECKS_S - 15)))
if [[ -n $smoke ]]; then
    scope=(--assignment quantization --suite public)
    "$py" -m grader grade --help 2> /dev/null | grep -q -- --task && scope+=(--task 1.2)
fi
step grade_reference "$CHECKS_S" "$py" -m grader grade --reference "${scope[@]}" \
    --output "$logs/grade_reference.json" &
step grade_stubs "$CHECKS_S" "$py" -m grader grade --submission . "${scope[@]}" \
    --output "$logs/grade_stubs.json" &
step gpu_tests "$CHECKS_S" "$py" -m pytest tests assignments -m gpu -v -rfEs \
    -p no:cacheprovider "${per_test[@]}" &
step gpu_mutants "$CHECKS_S" "$py" -m pytest tests/test_catalogue.py -k gpu_only -v -rfEs \
    -p no:cacheprovider &
wait

# 6-9. Benchmarks, one at a time.
if [[ -n $smoke ]]; then
    step bench_flash "$FLASH_S" "$py" benchmarks/bench_flash_attention.py --smoke \
        --dtypes float16 bfloat16
    step bench_quantize "$QUANT_S" "$py" benchmarks/bench_quantize.py --smoke
    step bench_ddp "$DDP_S" "$py" benchmarks/bench_ddp.py --smoke --world-sizes 1 2
    step bench_lora "$LORA_S" "$py" benchmarks/bench_lora.py --smoke
else
    sizes=(1)
    (( gpus > 1 )) && sizes+=("$gpus")
    step bench_flash "$FLASH_S" "$py" benchmarks/bench_flash_attention.py \
        --dtypes float16 bfloat16 --rep 50
    step bench_quantize "$QUANT_S" "$py" benchmarks/bench_quantize.py --rep 50
    step bench_ddp "$DDP_S" "$py" benchmarks/bench_ddp.py --backend nccl \
        --world-sizes "${sizes[@]}"
    step bench_lora "$LORA_S" "$py" benchmarks/bench_lora.py
fi

report
