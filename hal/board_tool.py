"""A technician's tool for one drawer board, on its own serial port (the service stopped).

    python -m hal.board_tool PORT info          # firmware version, drawer id, pockets, uptime
    python -m hal.board_tool PORT maintenance   # reset the board into its REPL, for flashing

``info`` exits 0 when the board runs the firmware this software expects, 3 otherwise (the
check the serial backend makes at start-up). ``maintenance`` is how ``firmware/flash.sh``
can reach a board that is running the firmware: the running link ignores Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

import serial

from controller.errors import ArmoireError, HardwareError
from firmware import protocol as P
from hal.serial_backend import open_port


class BoardClient:
    """Synchronous requests with resends; no threads (one-off use, not the cabinet's link)."""

    def __init__(self, port: str) -> None:
        try:
            self.serial = open_port(port)
        except Exception as exc:
            raise HardwareError(f"cannot open {port}: {exc}",
                                f"impossible d'ouvrir {port} : {exc}",
                                code="PORT_UNAVAILABLE") from exc
        self.decoder = P.Decoder()
        self.seq = 0

    def request(self, cmd: int, args: bytes = b"", attempts: int = 5,
                timeout: float = 0.2) -> bytes:
        self.seq = P.seq_after(self.seq)
        frame = P.encode(self.seq, cmd, args)
        try:
            for _ in range(attempts):
                self.serial.write(frame)
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    for seq, answer, reply in self.decoder.feed(self.serial.read(
                            self.serial.in_waiting or 1)):
                        if seq == self.seq and answer == cmd | P.RESPONSE:
                            return reply
        except (serial.SerialException, OSError) as exc:   # unplugged, or not a board
            raise HardwareError(f"the serial port failed: {exc}",
                                f"le port série a échoué : {exc}",
                                code="PORT_UNAVAILABLE") from exc
        raise HardwareError("the drawer board does not answer",
                            "la carte du tiroir ne répond pas", code="BOARD_NOT_ANSWERING")

    def info(self) -> dict[str, Any]:
        """The board's HELLO. A board whose answer this software cannot read (another
        protocol lays HELLO out otherwise) is an error with a code, never a traceback:
        checking unknown boards is what this tool is for."""
        reply = self.request(P.HELLO)
        try:
            return dict(P.unpack_hello(reply))
        except (struct.error, IndexError, ValueError, UnicodeError) as exc:
            if len(reply) >= 2 and reply[0] == P.OK and reply[1] != P.PROTOCOL_VERSION:
                raise HardwareError(
                    f"the board speaks protocol {reply[1]}, this software "
                    f"{P.PROTOCOL_VERSION}: flash the board (firmware/flash.sh)",
                    f"la carte parle le protocole {reply[1]}, ce logiciel le "
                    f"{P.PROTOCOL_VERSION} : flashez-la (firmware/flash.sh)",
                    code="PROTOCOL_MISMATCH") from exc
            raise HardwareError(f"the board's answer to HELLO cannot be read ({reply.hex()})",
                                f"la réponse de la carte à HELLO est illisible ({reply.hex()})",
                                code="BAD_ANSWER") from exc

    def maintenance(self) -> None:
        self.request(P.HELLO)
        reply = self.request(P.MAINTENANCE, P.MAINTENANCE_KEY)[:1] or b"\xff"
        if reply[0] == P.BUSY:
            raise HardwareError("the drawer is moving: try again once it has stopped",
                                "le tiroir bouge : réessayez quand il est arrêté",
                                code="BOARD_BUSY")
        if reply[0] != P.OK:
            raise HardwareError(f"the board refused maintenance (result {reply[0]})",
                                f"la carte a refusé la maintenance (résultat {reply[0]})",
                                code="BOARD_REFUSED")

    def close(self) -> None:
        self.serial.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hal.board_tool",
                                     description="Talk to one Armoire drawer board")
    parser.add_argument("port", help="the board's serial device, e.g. /dev/ttyACM0")
    parser.add_argument("action", choices=("info", "maintenance"))
    args = parser.parse_args(argv)
    try:
        client = BoardClient(args.port)
        try:
            if args.action == "maintenance":
                client.maintenance()
                print("the board resets into maintenance mode (REPL): flash it now")
                return 0
            info = client.info()
        finally:
            client.close()
    except ArmoireError as exc:
        print(f"board_tool: error [{exc.code}]: {exc.message_en}", file=sys.stderr)
        return exc.exit_code
    info["expected_version"] = P.FIRMWARE_VERSION
    print(json.dumps(info, indent=2, sort_keys=True))
    if info["version"] != P.FIRMWARE_VERSION or info["protocol"] != P.PROTOCOL_VERSION:
        print(f"board_tool: firmware {info['version']} is not {P.FIRMWARE_VERSION}: "
              "flash the board (firmware/flash.sh)", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
