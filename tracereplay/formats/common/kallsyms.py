"""Kernel address -> symbol name, from a kallsyms text (embedded in trace.dat) or a vmlinux.

Lookups are vectorized (one ``searchsorted`` for a whole column, names only
materialized for the distinct addresses). Unresolved addresses print the way
the kernel's ``%pS`` prints them: ``0x`` and the hex value (``0x0`` for NULL).

Example::

    >>> syms = Symbols.from_kallsyms("ffffffff81000000 T _stext\\nffffffff81001000 T foo\\n")
    >>> syms.names(np.array([0xFFFFFFFF81001010, 0], dtype=np.uint64))
    ['foo', '0x0']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Symbols", "hex_names"]

# Absolute and per-CPU symbols are not code: %pS never resolves to them.
_SKIP_TYPES = frozenset("aAuUvV")


def hex_names(addrs: npt.NDArray[Any]) -> list[str]:
    return [f"{a:#x}" for a in addrs.tolist()]


class Symbols:
    """Sorted symbol table."""

    def __init__(self, addrs: npt.NDArray[np.uint64], names: list[str]) -> None:
        order = np.argsort(addrs, kind="stable")
        self.addrs = addrs[order]
        self._names = [names[i] for i in order.tolist()]
        self.damaged = 0  # kallsyms lines whose address did not parse (skipped)

    def __len__(self) -> int:
        return len(self._names)

    @classmethod
    def from_kallsyms(cls, text: str) -> Symbols:
        addrs: list[int] = []
        names: list[str] = []
        text_start: int | None = None
        damaged = 0
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or parts[1] in _SKIP_TYPES:
                continue
            try:
                addr = int(parts[0], 16)
            except ValueError:
                damaged += 1
                continue
            if addr >> 64:
                damaged += 1  # wider than an address: a damaged line
                continue
            if addr == 0:
                continue
            if parts[1] in "tT" and (text_start is None or addr < text_start):
                text_start = addr
            addrs.append(addr)
            names.append(parts[2])
        arr = np.array(addrs, dtype=np.uint64)
        if text_start is not None:
            # data symbols below the kernel text (per-CPU offsets) are never %pS targets
            keep = arr >= np.uint64(text_start)
            arr = arr[keep]
            names = [n for n, k in zip(names, keep.tolist(), strict=True) if k]
        table = cls(arr, names)
        table.damaged = damaged
        return table

    @classmethod
    def from_vmlinux(cls, path: str) -> Symbols:
        """Function symbols of a vmlinux ELF (pyelftools)."""
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        addrs: list[int] = []
        names: list[str] = []
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section in elf.iter_sections():
                if not isinstance(section, SymbolTableSection):
                    continue
                for sym in section.iter_symbols():
                    if sym["st_info"]["type"] == "STT_FUNC" and sym["st_value"] and sym.name:
                        addrs.append(sym["st_value"])
                        names.append(sym.name)
        return cls(np.array(addrs, dtype=np.uint64), names)

    def names(self, addrs: npt.NDArray[Any]) -> list[str]:
        """Symbol name of each address (hex when nothing covers it)."""
        addrs = np.asarray(addrs, dtype=np.uint64)
        uniq, inverse = np.unique(addrs, return_inverse=True)
        resolved = self._resolve(uniq)
        return [resolved[i] for i in inverse.ravel().tolist()]

    def _resolve(self, uniq: npt.NDArray[np.uint64]) -> list[str]:
        out = hex_names(uniq)
        if not len(self._names):
            return out
        pos = np.searchsorted(self.addrs, uniq, side="right") - 1
        # the first alias at an address is the one the kernel prints
        first = np.searchsorted(self.addrs, self.addrs[np.maximum(pos, 0)], side="left")
        for k, (p, f) in enumerate(zip(pos.tolist(), first.tolist(), strict=True)):
            if p >= 0 and uniq[k] != 0:
                out[k] = self._names[f]
        return out
