"""MicroPython firmware for the drawer boards, and the wire protocol shared with hal/ and sim/."""
