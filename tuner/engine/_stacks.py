"""Reading a stalled rank's stack."""

from __future__ import annotations

import os
import re


def innermost(stack: str) -> str:
    """``file:line in function`` of the last frame of a formatted stack (what a stalled rank is doing)."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stack)
    if not frames:
        return stack.strip().splitlines()[-1] if stack.strip() else "an unknown place"
    path, line, func = frames[-1]
    return f"{os.path.basename(path)}:{line} in {func}"
