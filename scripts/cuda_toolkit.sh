#!/usr/bin/env bash
# A CUDA toolkit for building vitrina with `--features cuda` (GPU training), on a machine
# that has none: NVIDIA's own PyPI wheels (pinned in scripts/requirements-cuda-build.txt),
# unpacked into one folder laid out as a toolkit. Building needs no GPU; running does.
#
#   eval "$(scripts/cuda_toolkit.sh)"             # installs once, prints the exports
#   cargo build --release --features cuda
#
# With a CUDA 13 toolkit already installed (nvcc on the PATH), skip this script and set
# CUDA_COMPUTE_CAP to your GPU's compute capability (90 for H100/H200, 89 for L4/RTX 40,
# 80 for A100) if nvidia-smi is not on the build machine.
#
# The toolkit's link-time libcuda is the driver's, which a machine without a GPU lacks:
# this script compiles a stub that only names the driver API's functions (the
# "lib/stubs" a toolkit ships); the real driver replaces it at run time.
#
# Settings: VITRINA_CUDA_HOME (default /var/tmp/vitrina-cuda), CUDA_COMPUTE_CAP (90).
set -euo pipefail

HOME_DIR=${VITRINA_CUDA_HOME:-/var/tmp/vitrina-cuda}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$HOME_DIR/nvidia/cu13
say() { echo "cuda_toolkit.sh: $*" >&2; }

if [ ! -x "$ROOT/bin/nvcc" ] || [ ! -e "$ROOT/lib/stubs/libcuda.so" ]; then
  mkdir -p "$HOME_DIR/wheels"
  say "downloading the CUDA 13.0 build wheels into $HOME_DIR/wheels (about 650 MB)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
    --platform manylinux2010_x86_64 --python-version 3.12 \
    -d "$HOME_DIR/wheels" -r "$HERE/requirements-cuda-build.txt"
  for wheel in "$HOME_DIR"/wheels/*.whl; do
    python3 -m zipfile -e "$wheel" "$HOME_DIR"
  done
  chmod +x "$ROOT"/bin/* "$ROOT"/nvvm/bin/* 2>/dev/null || true
  # Unversioned names for the linker.
  for lib in cudart cublas cublasLt nvrtc; do ln -sf "lib$lib.so.13" "$ROOT/lib/lib$lib.so"; done
  ln -sf libcurand.so.10 "$ROOT/lib/libcurand.so"
  # The driver stub: every function cudarc's driver bindings declare, doing nothing.
  bindings=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*cudarc-*/src/driver/sys/mod.rs' | sort -V | tail -1)
  if [ -z "$bindings" ]; then
    (cd "$HERE/.." && cargo fetch --quiet)
    bindings=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*cudarc-*/src/driver/sys/mod.rs' | sort -V | tail -1)
  fi
  mkdir -p "$ROOT/lib/stubs"
  grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$bindings" | sed -E 's/^\s+fn //; s/\($//' | sort -u |
    awk '{print "void " $1 "(void) {}"}' > "$ROOT/lib/stubs/libcuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" "$ROOT/lib/stubs/libcuda_stub.c"
  say "installed in $ROOT"
fi

cat <<EXPORTS
export CUDA_ROOT=$ROOT CUDA_HOME=$ROOT CUDA_PATH=$ROOT
export PATH=$ROOT/bin:$ROOT/nvvm/bin:\$PATH
export LIBRARY_PATH=$ROOT/lib:$ROOT/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
EXPORTS
