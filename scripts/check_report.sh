#!/usr/bin/env bash
# Renders a protoclust report in headless Chromium (Debian's `chromium`) and fails when an image
# the page references is missing, when the browser logs a console error or a failed load, or
# when no screenshot comes out.
#
#   scripts/check_report.sh runs/swav_cifar10/report [screenshot.png]
set -euo pipefail
dir=${1:?usage: check_report.sh REPORT_DIR [SCREENSHOT.png]}
shot=${2:-$dir/screenshot.png}
index="$dir/index.html"
[ -f "$index" ] || { echo "check_report: $index does not exist" >&2; exit 1; }

# 1. Every src="..." of the page exists beside it.
missing=0
refs=0
while IFS= read -r src; do
  refs=$((refs + 1))
  if [ ! -s "$dir/$src" ]; then
    echo "check_report: missing or empty image $dir/$src" >&2
    missing=$((missing + 1))
  fi
done < <(grep -o 'src="[^"]*"' "$index" | sed 's/^src="//; s/"$//')
echo "check_report: $refs images referenced, $missing missing"
[ "$missing" -eq 0 ] || exit 1
[ "$refs" -gt 0 ] || { echo "check_report: the page references no images" >&2; exit 1; }

# 2. Render it; Chromium writes console messages and load failures to its log.
browser=${CHROMIUM:-/usr/bin/chromium}
[ -x "$browser" ] || { echo "check_report: $browser not found (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
abs=$(cd "$dir" && pwd)/index.html
rm -f "$shot"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --enable-logging=stderr --v=0 \
  --window-size=1200,6000 --hide-scrollbars \
  --screenshot="$shot" "file://$abs" >"$log" 2>&1 || true
errors=$(grep -E 'CONSOLE.*(ERROR|Uncaught)|:ERROR:CONSOLE|Failed to load resource|net::ERR_FILE_NOT_FOUND|Not allowed to load local resource' "$log" || true)
if [ -n "$errors" ]; then
  echo "check_report: the browser reported errors:" >&2
  echo "$errors" >&2
  exit 1
fi
[ -s "$shot" ] || { echo "check_report: no screenshot was written"; tail -20 "$log" >&2; exit 1; }
echo "check_report: rendered without console errors -> $shot ($(stat -c %s "$shot") bytes)"
