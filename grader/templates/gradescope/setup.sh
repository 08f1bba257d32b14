#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image
# (written by `grader gradescope`, grader/authoring/gradescope.py). It makes
# /autograder/venv: Python 3.11 or newer, the CPU build of torch, and the grader
# from /autograder/source/source. Any failure fails the build, loudly, rather
# than every submission later.
set -euo pipefail

SOURCE=/autograder/source/source
VENV=/autograder/venv

# The course needs Python 3.11 (pyproject.toml). Ubuntu 22.04's python3 is 3.10:
# take python3.11 from its universe archive. Ubuntu's own python3 (3.12 on 24.04)
# cannot make a virtual environment until its -venv package is installed.
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHON=python3
    PACKAGES=(python3-venv)
else
    PYTHON=python3.11
    PACKAGES=(python3.11 python3.11-venv)
fi
if ! command -v "$PYTHON" >/dev/null || ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    "$PYTHON" -m venv "$VENV"
fi

pip=("$VENV/bin/python" -m pip install --no-cache-dir)
"${pip[@]}" --upgrade pip
# The CPU build: Gradescope's machines have no GPU, and the CUDA build is gigabytes.
"${pip[@]}" torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# Editable: the grader finds its hidden tests and reference beside its own code.
"${pip[@]}" -e "$SOURCE"

# A broken install fails here, once, not as a zero for every submission.
cd /
"$VENV/bin/python" -c 'import torch, triton, grader.pipeline.grade'
echo "autograder ready: $("$VENV/bin/python" --version), torch $("$VENV/bin/python" -c \
    'import torch; print(torch.__version__)')"
