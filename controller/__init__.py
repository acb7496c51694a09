"""Armoire controller: everything above the hardware line."""
