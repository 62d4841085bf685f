"""Manifest validation (DESIGN §6): clear errors naming the file and key."""

from __future__ import annotations

import pytest

from tracereplay.errors import ManifestError
from tracereplay.manifest import load_manifest

GOOD = """
[[vm]]
tgid = 4242
name = "qemu-system-x86"
[[vm.memslot]]
hva_start = 0x7f0000000000
size = 0x400000000
gpa_start = 0x0
[[vm.pinned]]
hva_start = 0x7f0000000000
size = 0x100000000

[host]
kernel = "6.18.44"
numa_nodes = 1
[host.vmstat_before]
numa_pte_updates = 1000
[host.vmstat_after]
numa_pte_updates = 250000
"""


def test_good_manifest(write):
    m = load_manifest(write("m.toml", GOOD))
    (vm,) = m.vms
    assert vm.tgid == 4242 and vm.ranges[0].hva_end == 0x7F0400000000
    assert vm.pinned[0].size == 0x100000000 and not vm.pinned_all
    assert m.vmstat_delta() == {"numa_pte_updates": 249000}


def test_pinned_all(write):
    text = GOOD.replace("[[vm.pinned]]\nhva_start = 0x7f0000000000\nsize = 0x100000000\n", "")
    text = text.replace('name = "qemu-system-x86"', 'name = "q"\npinned = "all"')
    (vm,) = load_manifest(write("m.toml", text)).vms
    assert vm.pinned_all and vm.pinned == vm.ranges


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[vm]\n", "not valid TOML"),
        ("[[vm]]\ntgid = 0\n", "tgid must be a positive integer"),
        ("[[vm]]\ntgid = 1\ncolor = 'red'\n", "unknown key(s): color"),
        ("[wat]\n", "unknown top-level key(s): wat"),
        (
            "[[vm]]\ntgid = 1\n[[vm.memslot]]\nhva_start = 0x1000\nsize = 0x1001\n",
            "not 4 KiB aligned",
        ),
        (
            "[[vm]]\ntgid = 1\n[[vm.memslot]]\nhva_start = 0x1000\nsize = 0x2000\n"
            "[[vm.memslot]]\nhva_start = 0x2000\nsize = 0x1000\n",
            "overlap",
        ),
        ("[[vm]]\ntgid = 1\n[[process]]\ntgid = 1\n", "same tgid appears twice"),
        ("[host]\nvmstat_after = { numa_pte_updates = 'x' }\n", "must be integers"),
    ],
)
def test_bad_manifests(write, text, message):
    path = write("bad.toml", text)
    with pytest.raises(ManifestError) as e:
        load_manifest(path)
    assert path in str(e.value) and message in str(e.value)
