#!/usr/bin/env bash
# Installs the Debian packages that `make run` and `make test` need, only when missing, so
# that both work on a machine that has never seen the project. Nothing to do when all are
# present.
#
#   deploy/ci-system-deps.sh          everything the test suite needs (make test)
#   deploy/ci-system-deps.sh --venv   only what making .venv needs (make run, make venv)
#
# python3-venv: Debian's python3 cannot make a virtualenv without it (no ensurepip).
# chromium: the browser tests. shellcheck: the scripts' lint. systemd: systemd-analyze, which
# verifies the units; without it (a container) those tests would be skipped, not failed.
set -euo pipefail
python=${PYTHON:-python3}
need=()
"$python" -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ "${1:-}" != "--venv" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
