#!/usr/bin/env bash
# Flash the Armoire drawer-board firmware onto an RP2040 running MicroPython.
#
#   firmware/flash.sh PORT DRAWER_ID        e.g. firmware/flash.sh /dev/ttyACM0 A
#
# Copies protocol.py, board.py, board_config.py (with DRAWER_ID set) and main.py to the board's
# root with mpremote, prints the firmware version the board now reports, and resets it.
# A board already running the firmware does not listen to the REPL: hold its Close button
# while plugging it in (maintenance mode) before flashing.
# MPREMOTE may name another mpremote (default: mpremote from PATH).
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 PORT DRAWER_ID" >&2
    exit 2
fi
port=$1
drawer=$2
if [[ ! $drawer =~ ^[A-Za-z0-9_-]{1,16}$ ]]; then
    echo "flash.sh: drawer id must be 1-16 letters, digits, _ or - (got '$drawer')" >&2
    exit 2
fi
mpremote=${MPREMOTE:-mpremote}
if ! command -v "$mpremote" >/dev/null 2>&1; then
    echo "flash.sh: mpremote not found (pip install mpremote)" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s/^DRAWER_ID = .*/DRAWER_ID = \"$drawer\"/" "$here/board_config.py" > "$tmp/board_config.py"
grep -q "^DRAWER_ID = \"$drawer\"$" "$tmp/board_config.py"

"$mpremote" connect "$port" \
    fs cp "$here/protocol.py" :protocol.py + \
    fs cp "$here/board.py" :board.py + \
    fs cp "$tmp/board_config.py" :board_config.py + \
    fs cp "$here/main.py" :main.py + \
    exec "import protocol, board_config; print('firmware', protocol.FIRMWARE_VERSION, 'drawer', board_config.DRAWER_ID)" + \
    reset
