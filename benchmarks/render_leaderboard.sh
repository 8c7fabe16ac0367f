#!/usr/bin/env bash
# What a reader of a leaderboard page sees, rendered by a real browser (headless Chromium), to check
# that the plot's labels are legible and each table scrolls inside its own box. Run from the
# repository root (needs Debian's `chromium`: apt-get install chromium):
#
#     benchmarks/render_leaderboard.sh [PAGE] [SCREENSHOT]
#
# PAGE defaults to the committed results/flow_temporal_toy/leaderboard.html, SCREENSHOT to the
# .png beside it.
set -euo pipefail
page=$(realpath "${1:-results/flow_temporal_toy/leaderboard.html}")
screenshot=$(realpath -m "${2:-${page%.html}.png}")
browser=$(command -v chromium || command -v chromium-browser) || { echo "no chromium: apt-get install chromium" >&2; exit 1; }
rm -f "$screenshot"
# --no-sandbox: Chromium refuses to run as root without it
if ! log=$("$browser" --headless --no-sandbox --disable-gpu --window-size=1280,1600 --screenshot="$screenshot" \
           "file://$page" 2>&1) || [[ ! -s $screenshot ]]; then
  echo "$log" >&2
  exit 1
fi
echo "$screenshot"
