#!/usr/bin/env bash
# The main job: create the starter assistant, train it, and show a parse and the next action.
# Usage: bash scripts/demo.sh [FOLDER]   (default: a fresh temporary folder)
source "$(dirname "$0")/_venv.sh"
TARGET="${1:-$(mktemp -d)/plantbot}"
parley init --no-prompt "$TARGET"
cd "$TARGET"
parley data validate
parley train
parley predict "how often should I water my cactus?"
