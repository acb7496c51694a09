#!/usr/bin/env bash
# Turns a fresh Raspberry Pi OS (Bookworm, desktop) into an Armoire cabinet: service user,
# data directory, virtualenv with the project, configuration, systemd units, udev rules, kiosk,
# hardware watchdog. Safe to run again (upgrades the code and units, keeps the configuration
# and the udev rules you edited, and stops before changing anything if the new version would
# refuse that configuration). See docs/deploy.md.
#
#   sudo deploy/install.sh              install or upgrade
#   deploy/install.sh --dry-run         print every action, change nothing (no root needed)
#   deploy/install.sh --prefix DIR      install into a fake root DIR (no root needed): files
#                                       only; no user, no ownership, no apt, no udev reload;
#                                       units are enabled with `systemctl --root=DIR`.
#                                       ARMOIRE_PREFIX=DIR does the same.
# Other options: --no-apt (skip Debian packages), --no-venv (skip the virtualenv), --no-kiosk.
set -euo pipefail

usage() {
  sed -n '2,15s/^# \{0,1\}//p' "$0"
}

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY="$SRC/deploy"
PREFIX=${ARMOIRE_PREFIX:-}
DRY_RUN=0
DO_APT=1
DO_VENV=1
DO_KIOSK=1

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
              PREFIX=$2; shift ;;
    --prefix=*) PREFIX=${1#--prefix=} ;;
    --no-apt) DO_APT=0 ;;
    --no-venv) DO_VENV=0 ;;
    --no-kiosk) DO_KIOSK=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$PREFIX" ]; then
  case "$PREFIX" in
    /*) ;;
    *) PREFIX="$(pwd)/$PREFIX" ;;
  esac
  PREFIX=${PREFIX%/}
fi

# Paths on the target system (the units and the code refer to these, whatever the prefix).
SERVICE_USER=armoire
DATA_DIR=/var/lib/armoire
BACKUP_DIR=$DATA_DIR/backups
ETC_DIR=/etc/armoire
CONFIG=$ETC_DIR/armoire.toml
OPT_DIR=/opt/armoire
VENV=$OPT_DIR/venv
UNIT_DIR=/etc/systemd/system
KIOSK_BIN=/usr/local/lib/armoire/armoire-kiosk
UNITS=(armoire.service armoire-verify.service armoire-backup.service armoire-backup.timer)
ENABLE=(armoire-verify.service armoire.service armoire-backup.timer)

# Managing users, ownership and running services only makes sense on the real root.
REAL_ROOT=1
[ -n "$PREFIX" ] && REAL_ROOT=0

if [ "$DRY_RUN" -eq 0 ] && [ "$REAL_ROOT" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo), or use --dry-run / --prefix DIR" >&2
  exit 1
fi

# --- helpers: every change goes through run(), which prints it and skips it in a dry run ----

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

run() {
  local out="+" word
  for word in "$@"; do out+=" $(printf '%q' "$word")"; done
  printf '%s\n' "$out"
  if [ "$DRY_RUN" -eq 0 ]; then
    "$@"
  fi
}

# The target path of a system path, inside the prefix when there is one.
t() { printf '%s%s' "$PREFIX" "$1"; }

ensure_dir() {  # MODE DIR [OWNER:GROUP]
  local mode=$1 dir=$2 owner=${3:-}
  if [ -d "$(t "$dir")" ]; then
    # An existing directory (a mounted data partition, one made by hand) gets the mode too:
    # the data directory holds the database and the backups.
    if [ "$((8#$(stat -c %a "$(t "$dir")")))" -eq "$((8#$mode))" ]; then
      note "= $dir exists"
    else
      run chmod "$mode" "$(t "$dir")"
    fi
  else
    run install -d -m "$mode" "$(t "$dir")"
  fi
  set_owner "$owner" "$dir"
}

set_owner() {  # OWNER:GROUP PATH (only on the real root)
  local owner=$1 path=$2
  [ -n "$owner" ] || return 0
  if [ "$REAL_ROOT" -eq 1 ]; then
    run chown "$owner" "$(t "$path")"
  else
    note "skip: chown $owner $path (fake root)"
  fi
}

install_file() {  # MODE SRC DEST [OWNER:GROUP] — managed file: replaced when it differs
  local mode=$1 src=$2 dest=$3 owner=${4:-}
  if [ -f "$(t "$dest")" ] && cmp -s "$src" "$(t "$dest")"; then
    note "= $dest unchanged"
  else
    run install -D -m "$mode" "$src" "$(t "$dest")"
  fi
  set_owner "$owner" "$dest"
}

install_once() {  # MODE SRC DEST [OWNER:GROUP] — site file: written once, then the site's own
  local mode=$1 src=$2 dest=$3 owner=${4:-}
  if [ -e "$(t "$dest")" ]; then
    note "= $dest kept (site-edited file; compare with $src)"
  else
    run install -D -m "$mode" "$src" "$(t "$dest")"
    set_owner "$owner" "$dest"
  fi
}

service_reads() {  # PATH — a site file the controller reads: 0640 root:armoire, if it exists
  local path=$1
  [ -f "$(t "$path")" ] || return 0
  if [ "$((8#$(stat -c %a "$(t "$path")")))" -ne "$((8#640))" ]; then
    run chmod 0640 "$(t "$path")"
  fi
  set_owner "root:$SERVICE_USER" "$path"
}

write_generated() {  # MODE DEST CONTENT — generated from the configuration
  local mode=$1 dest=$2 content=$3 tmp
  if [ -f "$(t "$dest")" ] && [ "$(cat "$(t "$dest")")" = "$content" ]; then
    note "= $dest unchanged"
    return 0
  fi
  printf '+ write %s:\n' "$(t "$dest")"
  printf '%s\n' "$content" | sed 's/^/      | /'
  if [ "$DRY_RUN" -eq 0 ]; then
    tmp=$(mktemp)
    printf '%s\n' "$content" >"$tmp"
    install -D -m "$mode" "$tmp" "$(t "$dest")"
    rm -f "$tmp"
  fi
}

ensure_config_line() {  # FILE LINE — append LINE to a config.txt-style FILE unless present
  local file=$1 line=$2
  if grep -qxF "$line" "$(t "$file")"; then
    note "= $file already has '$line'"
  else
    # Under an explicit [all]: config.txt may end inside a model filter such as [cm4], and a
    # line appended there would apply to that model only.
    printf '+ append %q to %s\n' "[all] $line" "$(t "$file")"
    [ "$DRY_RUN" -eq 1 ] || printf '\n[all]\n%s\n' "$line" >>"$(t "$file")"
  fi
}

# The kiosk settings, read from the configuration (the example's, before it exists). Read
# first, so that a bad value stops the script before it has changed anything. The kiosk's
# URL is on the controller's own port, [server] port (the controller's unit passes no
# --port): the rule is controller/config.py's parse_server_port, repeated here because no
# virtualenv exists yet on a first install.
config_source=$(t "$CONFIG")
# A first install (no configuration yet) ends by saying how to make the first admin.
first_install=0
[ -f "$config_source" ] || { config_source="$DEPLOY/armoire.example.toml"; first_install=1; }
kiosk_env=$(python3 - "$config_source" <<'PY'
import sys, tomllib
try:
    with open(sys.argv[1], "rb") as fh:
        raw = tomllib.load(fh)
except (OSError, tomllib.TOMLDecodeError) as exc:
    sys.exit(f"install.sh: cannot read {sys.argv[1]}: {exc}")
kiosk = raw.get("kiosk", {})
server = raw.get("server", {})
if not isinstance(kiosk, dict) or not isinstance(server, dict):
    sys.exit("install.sh: [kiosk] and [server] must be tables")
port = server.get("port", 8080)
# From 1024: the controller runs without capabilities and cannot listen below.
if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
    sys.exit(f"install.sh: [server] port must be a whole number from 1024 to 65535 (the "
             f"controller, unprivileged, cannot listen below), not {port!r}")
base = f"http://127.0.0.1:{port}"
url = kiosk.get("url", base + "/")
blank = kiosk.get("blank_after_seconds", 0)
if (not isinstance(url, str) or "'" in url
        or not (url == base or url.startswith(base + "/"))):
    sys.exit(f"install.sh: [kiosk] url must be on the controller's port, {base}/ "
             f"([server] port {port}), not {url!r}; or leave it out")
if not isinstance(blank, int) or isinstance(blank, bool) or blank < 0:
    sys.exit(f"install.sh: [kiosk] blank_after_seconds must be a whole number >= 0, not {blank!r}")
print("# Written by deploy/install.sh from [server] and [kiosk] in /etc/armoire/armoire.toml; rerun it after editing.")
print(f"ARMOIRE_KIOSK_URL='{url}'")
print(f"ARMOIRE_BLANK_SECONDS={blank}")
PY
)
blank_seconds=$(printf '%s\n' "$kiosk_env" | sed -n 's/^ARMOIRE_BLANK_SECONDS=//p')

# The hospital's LASA list ([layout] lasa, relative to the configuration), which the controller
# reads at start and refuses to start without. Its unit sees neither /home nor the real /tmp
# (ProtectHome=, PrivateTmp=): a list there, or one that does not exist, would take the
# cabinet down at the upgrade's restart, so it stops the script here, before any change.
lasa_file=$(python3 - "$config_source" "$CONFIG" "$PREFIX" <<'PY'
import os, sys, tomllib
with open(sys.argv[1], "rb") as fh:
    layout = tomllib.load(fh).get("layout", {})
name = layout.get("lasa") if isinstance(layout, dict) else None
if name is None:
    sys.exit(0)
if not isinstance(name, str) or not name.strip():
    sys.exit(f"install.sh: [layout] lasa must be a file name, not {name!r}")
path = os.path.normpath(os.path.join(os.path.dirname(sys.argv[2]), name))
for top, why in (("/home", "ProtectHome="), ("/root", "ProtectHome="),
                 ("/run/user", "ProtectHome="), ("/tmp", "PrivateTmp="),
                 ("/var/tmp", "PrivateTmp=")):
    if path == top or path.startswith(top + "/"):
        sys.exit(f"install.sh: [layout] lasa {path}: the controller's unit cannot see {top} "
                 f"({why}); put the list beside the configuration (lasa = \"lasa.csv\")")
if not os.path.isfile(sys.argv[3] + path):
    sys.exit(f"install.sh: [layout] lasa {path} does not exist: the controller would refuse "
             "to start (BAD_CONFIG); copy the list there or remove the key")
print(path)
PY
)

# The units write only below the data directory (ReadWritePaths=) and wait only for its mount
# (RequiresMountsFor=). A database, badge key or backup folder configured elsewhere fails
# there (read-only file system) unless the site added both for it with `systemctl edit`:
# said, not refused, since the installer cannot tell whether that drop-in exists.
python3 - "$config_source" "$DATA_DIR" >&2 <<'PY'
import os, sys, tomllib
with open(sys.argv[1], "rb") as fh:
    raw = tomllib.load(fh)
data = sys.argv[2]
for table, key, units in (("database", "path", "armoire armoire-verify armoire-backup"),
                          ("database", "badge_key", "armoire armoire-backup"),
                          ("backup", "dir", "armoire-backup")):
    section = raw.get(table, {})
    value = section.get(key) if isinstance(section, dict) else None
    if not isinstance(value, str) or not os.path.isabs(value):
        continue  # none, or one the controller itself refuses by name
    path = os.path.normpath(value)
    if path == data or path.startswith(data + "/"):
        continue
    print(f"install.sh: WARNING: [{table}] {key} {value} is outside {data}, the only place "
          f"the units may write (ReadWritePaths=) and whose mount they wait for "
          f"(RequiresMountsFor=): move it below {data}, or allow it with "
          f"`systemctl edit UNIT` (ReadWritePaths={os.path.dirname(path)} and "
          f"RequiresMountsFor={os.path.dirname(path)}) for UNIT in: {units}.")
PY

# An upgrade keeps the site's configuration and restarts the controller on the new code. A
# file the new code refuses (a key it no longer reads, a value it now bounds) would take the
# cabinet down at that restart: so the installed file is checked with this checkout's code,
# through the installed virtualenv's Python and libraries, before anything has changed
# (-B: root leaves no __pycache__ in the checkout).
venv_python="$(t "$VENV")/bin/python"
config_check=""
if [ -f "$(t "$CONFIG")" ] && [ -x "$venv_python" ]; then
  config_status=0
  config_check=$(PYTHONPATH="$SRC" "$venv_python" -B - "$(t "$CONFIG")" 2>&1 <<'PY'
import sys
try:
    from controller.cli import error_line
    from controller.config import load
    from controller.errors import ArmoireError
    from controller.runtime import check_database_path
    try:
        check_database_path(load(sys.argv[1]), sim=False, db_path=None)
    except ArmoireError as exc:
        print(error_line(exc.code, exc.message_en, exc.message_fr))
        sys.exit(2)
except Exception as exc:  # this version needs a library the old virtualenv lacks, say
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(3)
PY
) || config_status=$?
  if [ "$config_status" -eq 2 ]; then
    echo "install.sh: $CONFIG is refused by this version of Armoire; nothing was changed" \
         "and the controller keeps running the installed version:" >&2
    echo "  $config_check" >&2
    echo "Fix it (compare with $DEPLOY/armoire.example.toml), then run the installer again." >&2
    exit 1
  elif [ "$config_status" -ne 0 ]; then
    echo "install.sh: WARNING: could not check $CONFIG with this version ($config_check);" \
         "after the upgrade, check that 'systemctl status armoire' says \"cabinet ready\"." >&2
    config_check=""
  else
    config_check="$CONFIG: configuration accepted by this version"
  fi
fi

# --no-venv installs this version's units over the code already installed. Units that call
# a command that code lacks fail in their own way: an ExecCondition= (`armoire has-database`,
# newer than some installs) that cannot parse exits 2, which systemd reads as "skip", so the
# boot's journal verification and the nightly backup would stop in silence. So the armoire
# the units will run is asked, before any change, for each command and option the units
# give it (`armoire COMMAND --help`): checked, not guessed from a version number.
installed_armoire="$(t "$VENV")/bin/armoire"
commands_check=""
if [ "$DO_VENV" -eq 0 ] && [ -x "$installed_armoire" ]; then
  commands_status=0
  commands_check=$(python3 - "$installed_armoire" "$VENV/bin/armoire" "$DEPLOY"/*.service \
                   2>&1 <<'PY'
import os, re, shlex, subprocess, sys
armoire, unit_armoire, units = sys.argv[1], sys.argv[2], sys.argv[3:]
needed: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}
for unit in units:
    with open(unit, encoding="utf-8") as fh:
        for line in fh:
            # Exec*= lines; systemd's prefixes (-, @, :, +, !) are not part of the command.
            match = re.match(r"\s*Exec\w*=[-@:+!]*(.*)", line)
            argv = shlex.split(match[1]) if match else []
            if not argv or argv[0] != unit_armoire:
                continue
            words = []
            for word in argv[1:]:
                if word.startswith("-"):
                    break
                words.append(word)
            options, names = needed.setdefault(tuple(words), (set(), set()))
            options.update(w.split("=")[0] for w in argv[1:] if w.startswith("--"))
            names.add(os.path.basename(unit))
lacking = []
for words, (options, names) in sorted(needed.items()):
    try:
        done = subprocess.run([armoire, *words, "--help"], capture_output=True, text=True,
                              timeout=60)
        usage = done.stdout if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        usage = None
    missing = sorted(options) if usage is None else [
        o for o in sorted(options) if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", usage)]
    if usage is None or missing:
        lacking.append(f"armoire {' '.join([*words, *missing])} ({', '.join(sorted(names))})")
if lacking:
    print("; ".join(lacking))
    sys.exit(1)
PY
) || commands_status=$?
  if [ "$commands_status" -ne 0 ]; then
    echo "install.sh: $VENV/bin/armoire, the code the units run, lacks what this version's" \
         "units ask of it: $commands_check; nothing was changed. Run the installer" \
         "without --no-venv to install this version's code with its units." >&2
    exit 1
  fi
  commands_check="$VENV/bin/armoire runs every command the units use"
elif [ "$DO_VENV" -eq 0 ]; then
  echo "install.sh: WARNING: no $VENV/bin/armoire: the units installed now cannot start" \
       "until this version's code is installed there (run the installer without --no-venv)." >&2
fi

# Drawer boards run firmware/, and the controller refuses a board whose firmware is not its
# own version (FIRMWARE_MISMATCH, docs/serial.md). An upgrade that changes that version leaves
# the cabinet down at its restart until every board is flashed: say so before anything
# changes. The version installed last is recorded in $OPT_DIR/firmware-version.
FW_STAMP="$OPT_DIR/firmware-version"
new_fw=$(sed -n 's/^FIRMWARE_VERSION = "\(.*\)"$/\1/p' "$SRC/firmware/protocol.py")
backend=""
if [ -f "$(t "$CONFIG")" ]; then
  backend=$(python3 - "$(t "$CONFIG")" 2>/dev/null <<'PY' || true
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f).get("hardware", {}).get("backend", "gpio"))
PY
)
fi
old_fw=$(cat "$(t "$FW_STAMP")" 2>/dev/null || true)
if [ "$backend" = "serial" ] && [ "$old_fw" != "$new_fw" ]; then
  echo "install.sh: WARNING: this version's drawer-board firmware is $new_fw (installed" \
       "before: ${old_fw:-unknown}). The controller refuses boards on another version" \
       "(FIRMWARE_MISMATCH): after this upgrade the cabinet stays down until every board" \
       "is flashed. With the controller stopped (sudo systemctl stop armoire), for each" \
       "drawer: sudo $VENV/bin/python -m hal.board_tool /dev/armoire-drawer-A maintenance;" \
       "make firmware PORT=/dev/armoire-drawer-A DRAWER=A (needs mpremote); check it with" \
       "sudo $VENV/bin/python -m hal.board_tool /dev/armoire-drawer-A info; then sudo" \
       "systemctl start armoire. docs/deploy.md, 'Upgrading drawer boards'." >&2
fi

[ "$DRY_RUN" -eq 1 ] && say "dry run: printing actions, changing nothing"
[ -n "$PREFIX" ] && say "installing into fake root $PREFIX"
[ -n "$config_check" ] && say "$config_check"
[ -n "$commands_check" ] && say "$commands_check"

# --- 1. Debian packages ----------------------------------------------------------------------
# python3-lgpio from Debian rather than pip: it is built for the running kernel's GPIO
# character device, and the venv sees it through --system-site-packages. A kiosk that blanks
# its screen needs swayidle and wlopm on Wayland (the default desktop since Bookworm).
packages="python3-venv python3-lgpio sqlite3 curl"
if [ "$DO_KIOSK" -eq 1 ] && [ "$blank_seconds" -gt 0 ]; then
  packages="$packages swayidle wlopm"
fi
if [ "$DO_APT" -eq 1 ] && [ "$REAL_ROOT" -eq 1 ]; then
  say "Debian packages"
  run apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $packages
else
  say "Debian packages: skipped (would install: $packages)"
fi

# --- 2. Service user and directories ---------------------------------------------------------
say "service user '$SERVICE_USER' and directories"
if [ "$REAL_ROOT" -eq 1 ]; then
  if getent passwd "$SERVICE_USER" >/dev/null; then
    note "= user $SERVICE_USER exists"
  else
    run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "Armoire cabinet controller" "$SERVICE_USER"
  fi
  # gpio: /dev/gpiochip*; dialout: the drawer boards' serial ports.
  for group in gpio dialout; do
    if ! getent group "$group" >/dev/null; then
      note "= no group $group on this system"
    elif id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$group"; then
      note "= $SERVICE_USER already in $group"
    else
      run usermod -a -G "$group" "$SERVICE_USER"
    fi
  done
  # armoire-proxy: the group of the TLS proxy's socket ([server] proxy_socket). The
  # controller, a member, gives its socket that group; the site adds its proxy's user
  # (usermod -a -G armoire-proxy www-data), never to the group armoire, which reads the data.
  if getent group armoire-proxy >/dev/null; then
    note "= group armoire-proxy exists"
  else
    run groupadd --system armoire-proxy
  fi
  if id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx armoire-proxy; then
    note "= $SERVICE_USER already in armoire-proxy"
  else
    run usermod -a -G armoire-proxy "$SERVICE_USER"
  fi
else
  note "skip: useradd $SERVICE_USER, groupadd armoire-proxy (fake root)"
fi
ensure_dir 0750 "$DATA_DIR" "$SERVICE_USER:$SERVICE_USER"
ensure_dir 0750 "$BACKUP_DIR" "$SERVICE_USER:$SERVICE_USER"
# 0755: the kiosk runs as the desktop user and reads kiosk.env here; the configuration
# itself is 0640 root:armoire.
ensure_dir 0755 "$ETC_DIR" "root:$SERVICE_USER"
ensure_dir 0755 "$OPT_DIR"

if [ "$REAL_ROOT" -eq 1 ] && [ "$(findmnt -no FSTYPE / 2>/dev/null || true)" = overlay ] \
    && ! mountpoint -q "$DATA_DIR"; then
  echo "install.sh: WARNING: the root file system is an overlay (read-only root) but" \
       "$DATA_DIR is not a separate mount: the database would be lost at every reboot." \
       "Mount the data partition there first (docs/deploy.md, 'Data safety')." >&2
fi

# --- 3. Code: a virtualenv with the project --------------------------------------------------
if [ "$DO_VENV" -eq 1 ]; then
  say "virtualenv $VENV"
  if [ -x "$(t "$VENV")/bin/python" ]; then
    note "= $VENV exists"
  else
    run python3 -m venv --system-site-packages "$(t "$VENV")"
  fi
  # Not editable: the installed cabinet must not change when someone edits the checkout.
  run "$(t "$VENV")/bin/pip" install --quiet --upgrade "$SRC"
else
  say "virtualenv: skipped"
fi
install_file 0644 "$SRC/docs/deploy.md" "$OPT_DIR/docs/deploy.md"
write_generated 0644 "$FW_STAMP" "$new_fw"

# --- 4. Configuration ------------------------------------------------------------------------
say "configuration $CONFIG"
install_once 0640 "$DEPLOY/armoire.example.toml" "$CONFIG" "root:$SERVICE_USER"
# The configuration and the LASA list are read by the controller as armoire: a copy put
# there under a strict umask (0600, root's) passed the check above, run as root, then stopped
# the cabinet at its restart. Both are 0640 root:armoire at every run.
service_reads "$CONFIG"
[ -z "$lasa_file" ] || service_reads "$lasa_file"
install_file 0644 "$DEPLOY/armoire.example.toml" "$ETC_DIR/armoire.example.toml"


# --- 5. systemd units, hardware watchdog -----------------------------------------------------
say "systemd units"
for unit in "${UNITS[@]}"; do
  install_file 0644 "$DEPLOY/$unit" "$UNIT_DIR/$unit"
done
install_file 0644 "$DEPLOY/system.conf.d/armoire-watchdog.conf" \
  /etc/systemd/system.conf.d/armoire-watchdog.conf

say "hardware watchdog (dtparam=watchdog=on)"
boot_config=""
for candidate in /boot/firmware/config.txt /boot/config.txt; do
  if [ -f "$(t "$candidate")" ]; then boot_config=$candidate; break; fi
done
if [ -n "$boot_config" ]; then
  ensure_config_line "$boot_config" "dtparam=watchdog=on"
else
  note "skip: no /boot/firmware/config.txt (not a Raspberry Pi?)"
fi

# --- 6. udev rules ---------------------------------------------------------------------------
say "udev rules"
install_once 0644 "$DEPLOY/99-armoire.rules" /etc/udev/rules.d/99-armoire.rules
install_file 0644 "$DEPLOY/99-armoire.rules" "$ETC_DIR/99-armoire.rules.example"
if [ "$REAL_ROOT" -eq 1 ]; then
  run udevadm control --reload
  run udevadm trigger --subsystem-match=tty --subsystem-match=input
else
  note "skip: udevadm reload (fake root)"
fi

# --- 7. Kiosk --------------------------------------------------------------------------------
if [ "$DO_KIOSK" -eq 1 ]; then
  say "kiosk (Chromium on the touchscreen)"
  install_file 0755 "$DEPLOY/kiosk/armoire-kiosk.sh" "$KIOSK_BIN"
  install_file 0644 "$DEPLOY/kiosk/armoire-kiosk.desktop" /etc/xdg/autostart/armoire-kiosk.desktop
  write_generated 0644 "$ETC_DIR/kiosk.env" "$kiosk_env"
  if [ "$REAL_ROOT" -eq 1 ] && command -v raspi-config >/dev/null 2>&1; then
    # raspi-config's convention: 0 turns blanking on, 1 turns it off.
    if [ "$blank_seconds" -gt 0 ]; then
      run raspi-config nonint do_blanking 0
    else
      run raspi-config nonint do_blanking 1
    fi
  else
    note "skip: raspi-config screen blanking (fake root or not Raspberry Pi OS)"
  fi
  if [ "$REAL_ROOT" -eq 1 ] && ! command -v chromium-browser >/dev/null 2>&1 \
      && ! command -v chromium >/dev/null 2>&1; then
    echo "install.sh: WARNING: Chromium is not installed; the kiosk cannot start." >&2
  fi
else
  say "kiosk: skipped"
fi

# --- 8. Enable -------------------------------------------------------------------------------
say "enable units"
if [ "$REAL_ROOT" -eq 1 ]; then
  run systemctl daemon-reload
  run systemctl enable "${ENABLE[@]}"
  # An upgrade restarts a running controller on the new code; a first install starts nothing
  # until the configuration is edited and the cabinet rebooted.
  run systemctl try-restart armoire.service
elif command -v systemctl >/dev/null 2>&1; then
  run systemctl --root="$PREFIX" --quiet enable "${ENABLE[@]}"
else
  note "skip: systemctl --root=$PREFIX enable (no systemctl on this machine)"
fi

say "done"
if [ "$DRY_RUN" -eq 0 ] && [ "$first_install" -eq 1 ]; then
  # What the technician does next, in the checklist's order: the cabinet has no account
  # until its first admin is made, and that command refuses to run beside the controller;
  # so it comes before the first start, which the checklist makes with the motors off.
  cat <<EOF

Next (docs/deploy.md, "First-boot checklist"):
  1. edit $CONFIG: [cabinet] timezone, drawers, pins (or ports), timeouts, [server] hosts;
     drawer boards: their serial numbers in /etc/udev/rules.d/99-armoire.rules;
  2. create the first admin (no account exists without a seed file; it prints her one-time PIN):
     sudo -u $SERVICE_USER $VENV/bin/armoire admin --config $CONFIG --id ID --name "NAME"
  3. sudo raspi-config: boot to desktop with autologin; keep the serial console off;
  4. motors disconnected: sudo systemctl start armoire; systemctl status armoire must say
     Status: "cabinet ready"; then the checklist from its step 10 (drawers, magnets, reboot).
EOF
elif [ "$DRY_RUN" -eq 0 ]; then
  cat <<EOF

Upgrade installed: check that systemctl status armoire says Status: "cabinet ready".
EOF
fi
