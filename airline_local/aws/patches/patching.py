"""How a patch replaces a piece of moto: once, recognisably, idempotently.

Every patch module calls `replace`; it imports nothing of the project, so no patch module and no
registry can form an import cycle through it.
"""

from __future__ import annotations

from typing import Any


def replace(owner: Any, name: str, new: Any) -> bool:
    """Set owner.name = new unless a local patch is already there. True if replaced now."""
    current = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    target = current.fget if isinstance(current, property) else current
    if getattr(target, "__local_patch__", False):
        return False
    patched = new.fget if isinstance(new, property) else new
    patched.__local_patch__ = True
    setattr(owner, name, new)
    return True
