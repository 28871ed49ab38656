#!/usr/bin/env bash
# The main job: create the starter assistant with `parley init` and validate it.
# Usage: bash scripts/demo.sh [FOLDER]   (default: a fresh temporary folder)
source "$(dirname "$0")/_venv.sh"
TARGET="${1:-$(mktemp -d)/plantbot}"
parley init --no-prompt "$TARGET"
cd "$TARGET"
parley data validate
