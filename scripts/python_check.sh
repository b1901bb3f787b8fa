#!/usr/bin/env bash
# The Python package (crates/protoclust-py): builds the wheel with maturin (crates.io and PyPI
# only), installs it into a fresh venv, runs its pytest suite against the release CLI, then
# imports the same abi3 wheel on every pyenv CPython 3.10-3.13 that is installed.
# Usage: bash scripts/python_check.sh   (from the repository root, after `cargo build --release`)
# NO_TORCH=1 skips installing torch/torchvision (their interop tests then skip with a message).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/target/py-venv
python3 -m venv --clear "$venv"
"$venv/bin/pip" install -q "maturin>=1.16,<2" "numpy>=1.24" "pytest>=8" tqdm
if [ -z "${NO_TORCH:-}" ]; then
  # PyPI's Linux torch is the CUDA build (several GB); it is only needed for the interop tests.
  "$venv/bin/pip" install -q torch torchvision safetensors >/tmp/pip-torch.log 2>&1 \
    || echo "warning: could not install torch/torchvision (see /tmp/pip-torch.log): their tests skip"
fi
export MATURIN_NO_INSTALL_RUST=1
rm -f target/wheels/protoclust-*.whl
(cd crates/protoclust-py && "$venv/bin/maturin" build --release -o "$root/target/wheels")
wheel=$(ls target/wheels/protoclust-*.whl)
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheel"
# From the tests' folder, so `import protoclust` is the installed wheel, not the source tree.
(cd crates/protoclust-py/tests && PROTOCLUST_BIN="$root/target/release/protoclust" \
  "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider .)
pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for v in 3.10 3.11 3.12 3.13; do
  py=$(ls -d "$pyenv_root"/versions/$v.*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$py" ]; then
    echo "python $v: not installed (pyenv install $v to check it)"
    continue
  fi
  env=$root/target/py-$v
  "$py" -m venv --clear "$env"
  "$env/bin/pip" install -q numpy
  "$env/bin/pip" install -q --no-deps "$wheel"
  (cd /tmp && "$env/bin/python" -c "import sys, protoclust as pc; \
print(f'python {sys.version.split()[0]}: import protoclust {pc.__version__} ok, methods', pc.list_methods())")
done
