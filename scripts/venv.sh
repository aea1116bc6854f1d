# Sourced by scripts/test and scripts/oodaloo: creates .venv (Python 3.11+) and installs Oodaloo
# with every extra (PostgreSQL, Redis, the sandboxes, the development tools) at the versions
# requirements.lock names, again only when pyproject.toml or requirements.lock has changed since
# the last install. scripts/lock refreshes requirements.lock.

ensure_venv() {
  local python_bin="" candidate stamp wanted
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      python_bin=$candidate; break
    fi
  done
  if [ -z "$python_bin" ]; then
    echo "Oodaloo needs Python 3.11 or newer; none was found on PATH." >&2; return 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> Creating .venv with $python_bin" >&2
    "$python_bin" -m venv .venv || { echo "Could not create .venv (is python3-venv installed?)" >&2; return 1; }
  fi
  stamp=.venv/.oodaloo-installed
  wanted=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "==> Installing Oodaloo and its development tools into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 &&
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
      --constraint requirements.lock -e '.[dev,postgres,redis,sandbox]' >&2 ||
      { echo "pip install failed (see above); check network access to PyPI." >&2; return 1; }
    echo "$wanted" > "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}
