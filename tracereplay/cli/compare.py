"""``tracereplay compare``: two recordings side by side, and a prediction against a recording."""

from __future__ import annotations

import click

from tracereplay.cli.options import CONTEXT, PolicyChoice, format_choice, quiet_option
from tracereplay.contract import BUILTIN_POLICIES

_MANIFEST = click.Path(dir_okay=False)


@click.command("compare", context_settings=CONTEXT)
@click.argument("trace_a")
@click.argument("trace_b")
@click.option("--manifest-a", type=_MANIFEST, help="Manifest of A (default: A.manifest.toml).")
@click.option("--manifest-b", type=_MANIFEST, help="Manifest of B (default: B.manifest.toml).")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="A_VM=B_VM",
    help="Pair a VM (or replayed process) of A with one of B, by name or tgid (repeatable); "
    "the rest are paired by name.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=PolicyChoice(BUILTIN_POLICIES),
    help="Also show what POLICY's replay of A predicts against what B's kernel did (repeatable).",
)
@format_choice("table", "json")
@quiet_option
def compare_command(
    trace_a: str,
    trace_b: str,
    manifest_a: str | None,
    manifest_b: str | None,
    mapping: tuple[str, ...],
    policies: tuple[str, ...],
    fmt: str,
) -> None:
    """Compare recordings TRACE_A and TRACE_B, VM by VM.

    For each VM (matched by name, or --map A=B) every observed count and the
    reconstructed baseline of A and B, their difference, per second of trace and
    per GiB of guest RAM. With --policy P, also "predicted by P on A" against
    "observed on B": record B on a kernel carrying the patch P models and see
    whether it did what the replay of A predicted.

    \b
    Examples:
      tracereplay compare base.dat patched.dat
      tracereplay compare base.dat patched.dat --policy numa-protect --map qemu-a=qemu-b
      tracereplay compare base.dat patched.dat --format json
    """
    from tracereplay.pipeline import analyze
    from tracereplay.policies import DEFAULT_POLICIES, load_plugins
    from tracereplay.policies.base import check_policy_names
    from tracereplay.regress import compare, parse_mapping

    pairs = parse_mapping(mapping)
    load_plugins()
    check_policy_names(policies, " given to --policy")
    chosen = (*DEFAULT_POLICIES, *(p for p in policies if p not in DEFAULT_POLICIES))
    a = analyze(trace_a, manifest_a, chosen)
    b = analyze(trace_b, manifest_b, chosen)
    result = compare(a, b, mapping=pairs, policies=list(policies))
    click.echo(result.to_json() if fmt == "json" else result.to_table(), nl=False)
    for label, x in (("A", a), ("B", b)):
        for w in x.warnings:
            click.echo(f"tracereplay: warning [{label}: {w.code}]: {w.message}", err=True)


__all__ = ["compare_command"]
