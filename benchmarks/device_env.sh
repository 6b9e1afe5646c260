# Source this at the start of every lent-GPU command:  source benchmarks/device_env.sh
# Installs the carried wheels (.whl: jsonschema & co, flash-linear-attention) and this package
# (editable, no deps: the GPU image brings torch/triton/cupy/transformers) into the image's python.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
export PYTHONUNBUFFERED=1
set +e
