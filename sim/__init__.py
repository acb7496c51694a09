"""Simulator: physics attached below the real backends, fault injection, scenario runner."""
