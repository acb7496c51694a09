"""The wire protocol: CRC variant, COBS framing, and a decoder that survives any noise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import protocol as p


def test_crc_is_ccitt_false_catalogue_check():
    # CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740) catalogue check value
    assert p.crc16(b"123456789") == 0x29B1


def test_cobs_known_vectors():
    assert bytes(p.cobs_encode(b"")) == b"\x01"
    assert bytes(p.cobs_encode(b"\x00")) == b"\x01\x01"
    assert bytes(p.cobs_encode(b"\x11\x22\x00\x33")) == b"\x03\x11\x22\x02\x33"
    assert bytes(p.cobs_encode(bytes(range(1, 255)))) == b"\xff" + bytes(range(1, 255)) + b"\x01"


@given(st.binary(max_size=600))
def test_cobs_round_trip(data):
    enc = p.cobs_encode(data)
    assert 0 not in enc
    assert p.cobs_decode(enc) == data


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=p.MAX_ARGS))
def test_frame_round_trip(seq, cmd, args):
    wire = p.encode(seq, cmd, args)
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    assert p.Decoder().feed(wire) == [(seq, cmd, args)]


def test_frames_split_anywhere_and_back_to_back():
    wire = p.encode(1, p.OPEN) + p.encode(2, p.POLL, b"\x00\x05") + p.encode(3, p.LED, b"\x01")
    for cut in range(len(wire)):
        dec = p.Decoder()
        frames = dec.feed(wire[:cut]) + dec.feed(wire[cut:])
        assert [f[0] for f in frames] == [1, 2, 3]


def test_every_single_bit_flip_is_rejected():
    wire = p.encode(7, p.RELEASE, b"\x03")
    for i in range(len(wire) - 1):  # not the delimiter: that only splits the frame
        for bit in range(8):
            bad = bytearray(wire)
            bad[i] ^= 1 << bit
            assert p.Decoder().feed(bad) == []


def test_decoder_resynchronises_after_garbage_and_overflow():
    dec = p.Decoder()
    assert dec.feed(b"\x13\x37garbage" + bytes(range(1, 256)) * 3) == []
    assert dec.feed(b"\x00" + p.encode(9, p.STOP)) == [(9, p.STOP, b"")]
    assert dec.bad_frames >= 1


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_decoder_never_raises_and_never_accepts_bad_crc(noise):
    dec = p.Decoder()
    for seq, cmd, args in dec.feed(noise):
        # anything accepted from pure noise must be a frame whose CRC really matches
        body = bytes([p.MIN_FRAME + len(args), seq, cmd]) + args
        wire = p.encode(seq, cmd, args)
        assert p.parse(wire[:-1]) == (seq, cmd, args)
        assert len(body) + 2 <= p.MAX_FRAME


@given(st.binary(max_size=200), st.integers(0, 255), st.binary(max_size=40),
       st.binary(max_size=200))
def test_good_frame_survives_surrounding_noise(before, seq, args, after):
    dec = p.Decoder()
    frames = dec.feed(before + b"\x00" + p.encode(seq, p.POLL, args) + after)
    assert (seq, p.POLL, args) in frames


def test_hello_and_event_packing():
    args = p.pack_hello(0xBEEF, 12, 123456, 40, "0.1.0", "A")
    hello = p.unpack_hello(args)
    assert hello == {"protocol": p.PROTOCOL_VERSION, "boot_id": 0xBEEF, "next_event": 12,
                     "uptime_ms": 123456, "pockets": 40, "version": "0.1.0", "drawer_id": "A"}
    assert p.from_bitmap(p.bitmap([0, 9, 39], 40)) == [0, 9, 39]
    ev = p.pack_event(65535, p.EV_OPENED, 0, p.ST_SW_OPEN) + p.pack_event(0, p.EV_CLOSED, 0, 0)
    assert p.unpack_events(b"x" + ev, 1) == [(65535, p.EV_OPENED, 0, p.ST_SW_OPEN),
                                               (0, p.EV_CLOSED, 0, 0)]
    assert p.id_delta(0, 65535) == 1 and p.id_delta(65535, 0) == -1
    assert p.seq_after(255) == 1 and p.seq_after(0) == 1


def test_position_from_status():
    assert p.position_of(p.ST_SW_CLOSED) == p.POSITION_CLOSED
    assert p.position_of(p.ST_SW_OPEN) == p.POSITION_OPEN
    assert p.position_of(0) == p.POSITION_BETWEEN
    assert p.position_of(p.ST_SW_OPEN | p.ST_SW_CLOSED) == p.POSITION_INVALID


@settings(max_examples=300)
@given(st.integers(1, 255), st.integers(0, 255), st.binary(max_size=60), st.data())
def test_any_single_byte_error_in_a_frame_is_caught(seq, cmd, args, data):
    """CRC-16 catches every error burst up to 16 bits: a frame with one byte changed (LEN, SEQ,
    CMD, an argument or the CRC itself) is never accepted."""
    body = bytearray([p.MIN_FRAME + len(args), seq, cmd]) + args
    crc = p.crc16(body)
    body += bytes([crc >> 8, crc & 0xFF])
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] ^= data.draw(st.integers(1, 255))
    wire = bytes(p.cobs_encode(body)) + b"\x00"
    assert p.Decoder().feed(wire) == []
