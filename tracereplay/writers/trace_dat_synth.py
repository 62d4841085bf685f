"""Formats for events the trace.dat writer has no exact format file for.

The canonical ``args`` JSON is all a writer gets. For an event the 6.18
kernel's real format files (:mod:`tracereplay.writers.trace_dat_formats`) do
not cover, or whose source (an older kernel) has other fields, a format is
derived from the values themselves:

* :func:`infer_args` decodes the JSON into typed columns. Integers are kept
  exact over the whole u64/s64 range: polars infers ``Int128`` for values
  >= 2^63 and falls back to text when such a value shares a column with
  smaller ones, so those columns are re-read from the text (a value printed
  unquoted in the JSON is a number, never a string). A column with a negative
  value is signed (``Int64``), otherwise unsigned (``UInt64``: kernel addresses
  such as ``kvm_exit.rip`` stay above 2^63). Lists of integers (fixed arrays
  such as ``sys_enter.args``) get the same treatment per element.
* :func:`synth_body` writes one field per key: integers as ``long`` /
  ``unsigned long``, integer lists as ``__data_loc long[]`` /
  ``__data_loc unsigned long[]`` dynamic arrays, anything else as a
  ``__data_loc char[]`` string, so the reader renders the same JSON back.
* :func:`without_fields` removes from a real format the fields an older
  kernel's event lacks (and their print-fmt conversions).
"""

from __future__ import annotations

import re

import polars as pl

_U64 = 1 << 64


def _exact_ints(text: pl.Expr) -> pl.Expr:
    """Decimal integer text -> UInt64 bits (negatives in two's complement)."""
    neg = text.str.starts_with("-")
    as_signed = text.str.to_integer(base=10, dtype=pl.Int64, strict=False)
    as_unsigned = text.str.to_integer(base=10, dtype=pl.UInt64, strict=False)
    return pl.when(neg).then(as_signed.reinterpret(signed=False)).otherwise(as_unsigned)


def _numeric_text(args: pl.Series, key: str, dtype: pl.DataType) -> bool:
    """True when ``key``'s values are JSON numbers (or lists of them) shown as text by polars."""
    inner = dtype.inner if isinstance(dtype, pl.List) else dtype
    if inner not in (pl.String, pl.Int128):
        return False
    if inner == pl.Int128:
        return True
    quoted = f'"{key}":"' if not isinstance(dtype, pl.List) else f'"{key}":["'
    return not bool(args.str.contains(quoted, literal=True).any())


def _typed(col: pl.Series) -> pl.Series:
    """Exact integers of a numeric column read as text or Int128 (see the module docstring)."""
    listed = isinstance(col.dtype, pl.List)
    text = col.cast(pl.List(pl.String) if listed else pl.String)
    frame = pl.DataFrame({"v": text})
    if listed:
        flat = frame.select(pl.col("v").explode())["v"]
        negative = bool(flat.str.starts_with("-").any())
        out = frame.select(pl.col("v").list.eval(_exact_ints(pl.element())))["v"]
        return out.cast(pl.List(pl.UInt64)).list.eval(
            pl.element().reinterpret(signed=True) if negative else pl.element()
        )
    negative = bool(text.str.starts_with("-").any())
    out = frame.select(_exact_ints(pl.col("v")))["v"]
    return out.reinterpret(signed=True) if negative else out


def infer_args(args: pl.Series) -> pl.DataFrame:
    """Args as columns, types inferred exactly (no columns when they are not objects)."""
    try:
        decoded = args.str.json_decode(infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return pl.DataFrame({"_text": args})
    if not isinstance(decoded.dtype, pl.Struct):
        return pl.DataFrame({"_text": args}) if args.null_count() < args.len() else pl.DataFrame()
    frame = decoded.struct.unnest()
    fixed = [
        _typed(frame[key]).alias(key)
        for key, dtype in frame.schema.items()
        if _numeric_text(args, key, dtype)
    ]
    return frame.with_columns(fixed) if fixed else frame


_CONV = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?(?:p[a-zA-Z]*|(?:hh|h|ll|l|z)?[a-zA-Z])")


def without_fields(body: str, drop: list[str]) -> str:
    """A format body without ``drop`` fields (older kernels): field lines and their print
    conversions (the ``label=%x`` word of the format string) removed."""
    lines = [
        ln
        for ln in body.splitlines(keepends=True)
        if not any(
            re.search(rf"\b{re.escape(k)};", ln) and ln.lstrip().startswith("field:") for k in drop
        )
    ]
    text = "".join(lines)
    head, _, fmt = text.partition("print fmt: ")
    quote_end = fmt.index('"', 1)
    while fmt[quote_end - 1] == "\\":
        quote_end = fmt.index('"', quote_end + 1)
    fstr, rest = fmt[1:quote_end], fmt[quote_end + 1 :].strip()
    args = _split_args(rest.lstrip(",").strip())
    convs = list(_CONV.finditer(fstr))
    if len(convs) != len(args):
        return text  # not understood: keep the print fmt as it is
    for k in sorted(
        (
            i
            for i, a in enumerate(args)
            if any(re.search(rf"REC->{re.escape(d)}\b", a) for d in drop)
        ),
        reverse=True,
    ):
        m = convs[k]
        a = fstr.rfind(" ", 0, m.start()) + 1
        fstr = (fstr[:a].rstrip() + " " + fstr[m.end() :].lstrip()).strip()
        del args[k]
    return f'{head}print fmt: "{fstr.strip()}", {", ".join(args)}\n'


def _split_args(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text.rstrip():
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out


def synth_body(args: pl.DataFrame) -> str:
    """A format for an event tracereplay has no real one for: one field per args key
    (types from :func:`infer_args`)."""
    lines = []
    fmts = []
    refs = []
    offset = 8
    for key, dtype in args.schema.items():
        if dtype == pl.Boolean:
            ctype, size, signed, conv, ref = "unsigned char", 1, 0, "%u", f"REC->{key}"
        elif dtype.is_integer() or dtype == pl.Null:
            signed = 0 if dtype == pl.UInt64 else 1
            ctype, size = ("unsigned long" if not signed else "long"), 8
            conv, ref = ("%lu" if not signed else "%ld"), f"REC->{key}"
        elif dtype.is_float():
            ctype, size, signed, conv, ref = "long", 8, 1, "%ld", f"REC->{key}"
        elif isinstance(dtype, pl.List) and (dtype.inner.is_integer() or dtype.inner == pl.Null):
            signed = 0 if dtype.inner == pl.UInt64 else 1
            ctype = "__data_loc unsigned long[]" if not signed else "__data_loc long[]"
            size, conv = 4, "%s"
            ref = (
                f"__print_array(__get_dynamic_array({key}), __get_dynamic_array_len({key}) / 8, 8)"
            )
        else:
            ctype, size, signed, conv, ref = "__data_loc char[]", 4, 0, "%s", f"__get_str({key})"
        offset += -offset % size
        lines.append(f"\tfield:{ctype} {key};\toffset:{offset};\tsize:{size};\tsigned:{signed};\n")
        offset += size
        fmts.append(f"{key}={conv}")
        refs.append(ref)
    print_fmt = '"' + " ".join(fmts) + '"' + "".join(f", {r}" for r in refs)
    return "".join(lines) + f"\nprint fmt: {print_fmt}\n"
