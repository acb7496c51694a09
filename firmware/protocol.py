"""The wire protocol between the Pi and the drawer boards, shared by firmware/, hal/ and sim/.

This one file runs on the board (MicroPython) and on the Pi (CPython), so it only uses what
MicroPython has: bytes, bytearray, struct, plain classes. No typing at runtime, no
dataclasses, no enum, no f-strings.

Frame, before framing (all integers big-endian)::

    LEN  SEQ  CMD  ARGS...  CRC16
    1    1    1    0..N     2        LEN = 5 + len(ARGS), the whole frame

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor;
catalogue check value 0x29B1 over b"123456789") over LEN..ARGS. The frame is then COBS
encoded and ends with a single 0x00 delimiter, so a receiver that starts mid-stream or sees
garbage resynchronises at the next 0x00 and no byte of a frame can look like a delimiter.

Requests (Pi -> board) carry SEQ 1..255; the board answers with CMD | 0x80, the same SEQ, and
a result byte first in ARGS. Events the board sends on its own use CMD ``EVENT`` and SEQ 0.
"""

import struct

#: Bumped when a frame or a command changes meaning; the Pi refuses another version.
PROTOCOL_VERSION = 1
#: The firmware these sources build; the Pi refuses a board running anything else.
FIRMWARE_VERSION = "0.5.0"

#: Pockets are counted (HELLO) and addressed (RELEASE, LATCH_RELEASED) with one byte.
MAX_POCKETS = 255
#: A drawer motor commanded the other way while it runs is stopped first, and driven the new
#: way only after this pause: reversing a spinning gear motor at once draws a current surge
#: (back EMF plus stall current) that stresses the H-bridge and can brown out the supply, and
#: jerks the drawer and the ampoules in it. The board (firmware) and the Pi's gpio backend
#: both keep it; the travel limit counts from when the motor starts again.
REVERSE_PAUSE_MS = 200
MAX_FRAME = 128          # LEN is one byte; the largest frame either side may send
MIN_FRAME = 5
MAX_ARGS = MAX_FRAME - MIN_FRAME
#: COBS adds at most one byte per 254, plus the delimiter.
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 2

# -- commands (Pi -> board) -----------------------------------------------------------------
HELLO = 0x01     # -> proto, boot id, next event id, uptime, pockets, version, drawer id
CONFIG = 0x02    # max_travel_ms, switch_release_ms, pulse_ms, heartbeat_ms[, debounce_ms,
#                   magnet_off_ms] (u16 each) -> the values in effect, as many as were sent
POLL = 0x03      # heartbeat; ack = next event id wanted -> status, pending events
OPEN = 0x10
CLOSE = 0x11
STOP = 0x12
RELEASE = 0x20   # pocket index -> status, magnet on
SAFE = 0x21      # every output off
LED = 0x30       # 0 off, 1 on
MAINTENANCE = 0x7E  # MAINTENANCE_KEY: stop the link, reset into the REPL (for flashing)
MAINTENANCE_KEY = b"FLASH"
# -- board -> Pi ------------------------------------------------------------------------------
RESPONSE = 0x80  # OR-ed with the command answered
EVENT = 0x40     # unsolicited, SEQ 0

COMMAND_NAMES = {HELLO: "HELLO", CONFIG: "CONFIG", POLL: "POLL", OPEN: "OPEN", CLOSE: "CLOSE",
                 STOP: "STOP", RELEASE: "RELEASE", SAFE: "SAFE", LED: "LED",
                 MAINTENANCE: "MAINTENANCE"}

# -- result codes (first byte of every response) ----------------------------------------------
OK = 0
NEED_HELLO = 1   # the board has (re)booted or never met this Pi: no command runs before HELLO
BAD_ARGS = 2
UNKNOWN_COMMAND = 3
BUSY = 4         # MAINTENANCE refused while the drawer moves
FAILED = 5       # the board hit an error running the command; it stays up and answers

# -- event kinds --------------------------------------------------------------------------------
EV_OPENED = 1
EV_CLOSED = 2
EV_JAMMED = 3            # arg: motion (MOTION_OPENING / MOTION_CLOSING)
EV_SWITCH_FAULT = 4      # arg: switch (0 closed, 1 open) | reason << 4 (0 did not release, 1 both)
#                          both: at a run's end, at rest, or when a run would start
EV_MOVED_UNCOMMANDED = 5  # arg: switch
EV_CLOSE_PRESSED = 6
EV_LATCH_RELEASED = 7    # arg: pocket index
EV_WATCHDOG = 8          # arg: what was on (1 motor, 2 magnets): heartbeat lost, outputs off

SWITCH_CLOSED = 0
SWITCH_OPEN = 1
REASON_NOT_RELEASED = 0
REASON_BOTH = 1

# -- status byte, carried by every frame the board sends -------------------------------------
MOTION_STOPPED = 0
MOTION_OPENING = 1
MOTION_CLOSING = 2
ST_MOTION_MASK = 0x03
ST_SW_CLOSED = 0x04
ST_SW_OPEN = 0x08
ST_MAGNET_ON = 0x10
ST_WATCHDOG = 0x20       # the heartbeat watchdog has tripped since the last HELLO

POSITION_CLOSED = 0
POSITION_OPEN = 1
POSITION_BETWEEN = 2
POSITION_INVALID = 3     # both end switches pressed


def position_of(status: int) -> int:
    closed = bool(status & ST_SW_CLOSED)
    opened = bool(status & ST_SW_OPEN)
    if closed and opened:
        return POSITION_INVALID
    if closed:
        return POSITION_CLOSED
    if opened:
        return POSITION_OPEN
    return POSITION_BETWEEN


# -- CRC-16/CCITT-FALSE ------------------------------------------------------------------------
def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE, table driven (one lookup per byte keeps it fast on the board)."""
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFF00) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


# -- COBS ----------------------------------------------------------------------------------------
def cobs_encode(data: bytes | bytearray) -> bytearray:
    out = bytearray(1)
    code_at = 0
    code = 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
        else:
            out.append(byte)
            code += 1
            if code == 0xFF:
                out[code_at] = code
                code_at = len(out)
                out.append(0)
                code = 1
    out[code_at] = code
    return out


def cobs_decode(data: bytes | bytearray) -> bytearray | None:
    """The decoded bytes, or None when ``data`` is not valid COBS (never raises)."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            return None
        end = i + code
        if end > n:
            return None
        for j in range(i + 1, end):
            if data[j] == 0:
                return None
            out.append(data[j])
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return out


# -- frames -------------------------------------------------------------------------------------
def encode(seq: int, cmd: int, args: bytes | bytearray = b"") -> bytes:
    """One complete frame on the wire: COBS(LEN SEQ CMD ARGS CRC) + 0x00."""
    if len(args) > MAX_ARGS:
        raise ValueError("frame arguments too long")
    body = bytearray(3)
    body[0] = MIN_FRAME + len(args)
    body[1] = seq & 0xFF
    body[2] = cmd & 0xFF
    body.extend(args)
    crc = crc16(body)
    body.append(crc >> 8)
    body.append(crc & 0xFF)
    out = cobs_encode(body)
    out.append(0)
    return bytes(out)


def parse(raw: bytes | bytearray) -> tuple[int, int, bytes] | None:
    """(seq, cmd, args) from one COBS block without its delimiter, or None if it is not a
    well-formed frame with a good CRC. Never raises: the line may carry any noise."""
    body = cobs_decode(raw)
    if body is None or len(body) < MIN_FRAME or len(body) > MAX_FRAME:
        return None
    if body[0] != len(body):
        return None
    if crc16(body[:-2]) != (body[-2] << 8) | body[-1]:
        return None
    return body[1], body[2], bytes(body[3:-2])


class Decoder:
    """Turns a byte stream into frames. Feed it whatever the line delivered, in any pieces.

    Bytes are gathered up to the next 0x00; a block that grows past ``MAX_ENCODED`` without a
    delimiter is thrown away up to the next one, so noise cannot grow the buffer without bound.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.overflow = False
        self.bad_frames = 0      # blocks dropped (bad COBS, length or CRC): a line-noise gauge
        self.good_frames = 0

    def feed(self, data: bytes | bytearray) -> list[tuple[int, int, bytes]]:
        frames = []
        for byte in data:
            if byte == 0:
                if self.overflow:
                    self.overflow = False
                    self.bad_frames += 1
                elif self.buf:
                    frame = parse(self.buf)
                    if frame is None:
                        self.bad_frames += 1
                    else:
                        self.good_frames += 1
                        frames.append(frame)
                self.buf = bytearray()
            elif not self.overflow:
                self.buf.append(byte)
                if len(self.buf) > MAX_ENCODED:
                    self.overflow = True
                    self.buf = bytearray()
        return frames


# -- argument helpers -----------------------------------------------------------------------
def pack_str(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data)]) + data


def unpack_str(data: bytes, offset: int) -> tuple[str, int]:
    n = data[offset]
    end = offset + 1 + n
    if end > len(data):
        raise ValueError("string past the end of the frame")
    return bytes(data[offset + 1:end]).decode(), end


def pack_hello(boot_id: int, next_event: int, uptime_ms: int, pockets: int, version: str,
               drawer_id: str) -> bytes:
    # A board wired for more outputs than one byte can address offers the ones it can.
    return (struct.pack(">BBHHIB", OK, PROTOCOL_VERSION, boot_id & 0xFFFF, next_event & 0xFFFF,
                        uptime_ms & 0xFFFFFFFF, min(pockets, MAX_POCKETS))
            + pack_str(version) + pack_str(drawer_id))


def unpack_hello(args: bytes) -> dict[str, int | str]:
    _, proto, boot_id, next_event, uptime, pockets = struct.unpack(">BBHHIB", args[:11])
    version, at = unpack_str(args, 11)
    drawer_id, _ = unpack_str(args, at)
    return {"protocol": proto, "boot_id": boot_id, "next_event": next_event,
            "uptime_ms": uptime, "pockets": pockets, "version": version,
            "drawer_id": drawer_id}


def bitmap(indices: list[int], count: int) -> bytes:
    out = bytearray((count + 7) // 8)
    for i in indices:
        out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def from_bitmap(data: bytes) -> list[int]:
    return [i for i in range(len(data) * 8) if data[i >> 3] & (1 << (i & 7))]


#: An event inside a POLL response or an EVENT frame: id, kind, arg, status.
EVENT_FORMAT = ">HBBB"
EVENT_SIZE = 5
#: POLL response header: result, status, last fault (event kind or 0), events lost to a full
#: queue (saturating), more-pending flag, uptime ms, length of the magnet bitmap that follows.
POLL_FORMAT = ">BBBBBIB"
POLL_SIZE = 10
MAX_EVENTS_PER_POLL = 8


def pack_event(event_id: int, kind: int, arg: int, status: int) -> bytes:
    return struct.pack(EVENT_FORMAT, event_id & 0xFFFF, kind, arg, status)


def unpack_events(data: bytes, offset: int) -> list[tuple[int, int, int, int]]:
    events = []
    while offset + EVENT_SIZE <= len(data):
        events.append(struct.unpack(EVENT_FORMAT, data[offset:offset + EVENT_SIZE]))
        offset += EVENT_SIZE
    return events


def seq_after(seq: int) -> int:
    """Request sequence numbers run 1..255; 0 marks the board's own events."""
    return 1 if seq >= 255 else seq + 1


def id_delta(a: int, b: int) -> int:
    """a - b for 16-bit wrapping event ids, in -32768..32767."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d
