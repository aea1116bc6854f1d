# Sourced by scripts/test: the browser tests drive Debian's chromium (/usr/bin/chromium) with
# Playwright; Playwright's own browser download is never used. Installs chromium when missing and
# apt-get can (root); otherwise says which tests will be skipped (they fail instead when CI=true).

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Installing Debian's chromium for the browser tests (once)."
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
       { apt-get update -qq >/dev/null 2>&1 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; then
      return 0
    fi
  fi
  echo "chromium is not installed and could not be installed here: the browser tests" \
       "(tests/slack_sandbox/test_page_browser.py, tests/bot/test_demo_browser.py) will be skipped" \
       "(with CI=true they fail)." >&2
  return 0
}
