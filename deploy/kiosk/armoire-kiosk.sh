#!/usr/bin/env bash
# Armoire kiosk: Chromium full screen on the cabinet's UI, restarted whenever it exits.
#
# Started by the desktop session (XDG autostart: /etc/xdg/autostart/armoire-kiosk.desktop);
# installed as /usr/local/lib/armoire/armoire-kiosk. Settings come from
# /etc/armoire/kiosk.env, which install.sh writes from armoire.toml ([server] port, the port
# the controller serves, and the [kiosk] table):
#   ARMOIRE_KIOSK_URL=http://127.0.0.1:8080/
#   ARMOIRE_BLANK_SECONDS=0        # 0: the screen never blanks; N: blank after N idle seconds
#
# Why a loop and not a systemd --user unit: the desktop session's environment (WAYLAND_DISPLAY,
# DISPLAY, XDG_RUNTIME_DIR) is what Chromium needs, and the autostart entry runs inside it on
# labwc, wayfire and X11 alike; a loop restarts Chromium after a crash or an accidental close
# just as Restart=always would.
set -u

env_file=${ARMOIRE_KIOSK_ENV:-/etc/armoire/kiosk.env}
ARMOIRE_KIOSK_URL=http://127.0.0.1:8080/
ARMOIRE_BLANK_SECONDS=0
if [ -r "$env_file" ]; then
  # shellcheck source=/dev/null
  . "$env_file"
fi
url=$ARMOIRE_KIOSK_URL
blank=$ARMOIRE_BLANK_SECONDS
restart_delay=${ARMOIRE_KIOSK_RESTART_DELAY:-2}

runtime=${XDG_RUNTIME_DIR:-/tmp}
# One kiosk per session, even if the session starts us twice (autostart entry + a manual line
# in a compositor's own autostart file).
exec 9>"$runtime/armoire-kiosk.lock"
if ! flock -n 9; then
  echo "armoire-kiosk: already running" >&2
  exit 0
fi

browser=""
for candidate in chromium-browser chromium; do
  if command -v "$candidate" >/dev/null 2>&1; then
    browser=$candidate
    break
  fi
done
if [ -z "$browser" ]; then
  echo "armoire-kiosk: Chromium is not installed (apt-get install chromium-browser)" >&2
  exit 1
fi

# Screen blanking, as configured. On Wayland (labwc, wayfire) swayidle + wlopm turn the
# outputs off; on X11, the X screensaver/DPMS. A touch wakes the screen in both cases.
if [ -n "${WAYLAND_DISPLAY:-}" ]; then
  if [ "$blank" -gt 0 ]; then
    if command -v swayidle >/dev/null 2>&1 && command -v wlopm >/dev/null 2>&1; then
      swayidle -w timeout "$blank" "wlopm --off '*'" resume "wlopm --on '*'" &
    else
      # Said, not skipped in silence: the screen will stay lit although blanking was asked.
      echo "armoire-kiosk: screen blanking after ${blank}s asked, but swayidle or wlopm is" \
        "missing (apt-get install swayidle wlopm, or rerun deploy/install.sh)" >&2
    fi
  fi
elif [ -n "${DISPLAY:-}" ] && command -v xset >/dev/null 2>&1; then
  if [ "$blank" -gt 0 ]; then
    xset s "$blank" "$blank" +dpms dpms "$blank" "$blank" "$blank"
  else
    xset s off -dpms s noblank
  fi
fi

# Wait for the controller: Chromium started before it would show an error page first. Its
# health check is at the root of its port (scheme://host:port/healthz), whatever page the
# kiosk opens: a URL with a path would otherwise be waited on for ever.
origin=$(printf '%s' "$url" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://[^/]*).*$#\1#')
health="$origin/healthz"
until curl -fsS --max-time 2 -o /dev/null "$health" 2>/dev/null; do
  sleep 2
done

profile="$runtime/armoire-kiosk-profile"
while true; do
  # A fresh profile every start: no "restore pages?" bubble after a crash or a power cut, no
  # state carried between sessions, nothing written to the (possibly read-only) SD card.
  rm -rf "$profile"
  # Flags: full screen without exit; no first-run, default-browser, crash or translate UI;
  # no background networking (updates, sync, metrics, safe-browsing lists); no DNS and a dead
  # proxy for everything but loopback, so the kiosk cannot reach any network even if the
  # cabinet is plugged into one; no swipe-back navigation or pinch zoom on the touchscreen.
  "$browser" \
    --kiosk "$url" \
    --user-data-dir="$profile" \
    --ozone-platform-hint=auto \
    --noerrdialogs \
    --disable-infobars \
    --no-first-run \
    --no-default-browser-check \
    --disable-session-crashed-bubble \
    --disable-background-networking \
    --disable-component-update \
    --disable-sync \
    --disable-default-apps \
    --disable-extensions \
    --disable-breakpad \
    --disable-domain-reliability \
    --disable-client-side-phishing-detection \
    --disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication \
    --no-pings \
    --password-store=basic \
    --check-for-update-interval=31536000 \
    --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE localhost" \
    --proxy-server="127.0.0.1:9" \
    --overscroll-history-navigation=0 \
    --disable-pinch \
    >/dev/null 2>&1
  echo "armoire-kiosk: $browser exited with status $?; restarting" >&2
  sleep "$restart_delay"
done
