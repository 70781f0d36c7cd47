#!/usr/bin/env bash
# Debian's chromium for the tests that open the live view's web viewer in a real headless browser
# (Playwright drives it; the Python package comes with env/requirements.lock). Called by ./run-tests.
# Idempotent; where it cannot install (no apt-get, not root) it says so and those tests skip.
set -uo pipefail
say() { printf '[setup] %s\n' "$*" >&2; }
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
  say "no chromium, and no apt-get as root to install it: the web-viewer browser test will skip (apt-get install chromium)"
  exit 0
fi
say "installing Debian's chromium for the web-viewer browser test (apt-get, once)"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
    >/tmp/vla-il-chromium-install.log 2>&1; then
  say "could not install chromium (see /tmp/vla-il-chromium-install.log): the web-viewer browser test will skip"
fi
exit 0
