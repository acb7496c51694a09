"""This board's wiring and identity: edit per board before flashing (see README.md).

The Pi checks ``DRAWER_ID`` at start-up, so a board plugged into the wrong port is refused
instead of opening the wrong drawer. Pin numbers are RP2040 GPIOs.
"""

DRAWER_ID = "A"

MOTOR_FORWARD = 2
MOTOR_BACKWARD = 3
SWITCH_CLOSED = 4     # to ground when pressed (internal pull-up)
SWITCH_OPEN = 5
CLOSE_BUTTON = 6
LED = 25              # the Pico's on-board LED; None if there is none

#: Pocket magnets wired to GPIOs, in pocket order (index = row * cols + col); empty for a
#: matrix drawer. Used when MAGNET_SHIFT is None.
MAGNETS = (7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
#: Or magnets behind a chain of 74HC595 shift registers, for more pockets than GPIOs:
#: (data pin, clock pin, latch pin, /OE pin or None, number of outputs), e.g.
#: MAGNET_SHIFT = (7, 8, 9, 10, 40) for a 5 x 8 drawer (5 chips). Output i drives pocket i.
MAGNET_SHIFT = None

#: An end switch or the Close button must hold a new level this long (ms) before an
#: uncommanded move or a press is reported; 5..100, clamped. Used until the Pi's CONFIG
#: sends its hardware.timeouts.switch_debounce_ms, which then applies. Stopping the motor at
#: an end switch is not delayed.
SWITCH_DEBOUNCE_MS = 25

#: Rest of a magnet after each pulse (ms); 500..10000, clamped (never shorter than 500).
#: Magnets are also pulsed one at a time. Used until the Pi's CONFIG sends its
#: magnet_min_off_ms, which then applies (clamped the same way).
MAGNET_MIN_OFF_MS = 1000

#: "usb": frames on the USB CDC serial port (the REPL is silenced while running);
#: "uart": frames on UART0 (GP0 TX, GP1 RX) through a USB-serial adapter on the Pi.
LINK = "usb"
UART_ID = 0
UART_TX = 0
UART_RX = 1
BAUDRATE = 115200

#: The chip's own watchdog: if the asyncio loop hangs for this long the RP2040 resets, and a
#: reset leaves every output low (off).
HW_WATCHDOG_MS = 2000
#: Hold the Close button while powering up to get the REPL (for flashing) instead of the link.
MAINTENANCE_PIN = CLOSE_BUTTON
