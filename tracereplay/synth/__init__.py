"""Synthetic scenario generator with independent ground truth (issue 7).

``tracereplay synth NAME|SCENARIO.toml -o OUT [--truth TRUTH.json] [--seed N]``
simulates NUMA balancing, KVM and migration on a host described by a scenario
(:mod:`tracereplay.synth.scenario`) and writes the trace the kernel would have
written (tracefs text with ``record-tgid`` and ``irq-info``; ``.dat`` and
``.perfetto-trace`` through the writers, see :mod:`.generate`), the VM
manifest ``OUT.manifest.toml`` (memslots carry ``shared = true`` / ``thp =
true`` when the scenario says so) and, with ``--truth``, the ground truth per
policy, shaped like ``analyze --format json``::

    {"vms": [{"tgid": 4242, "name": "qemu-system-x86",
              "policies": {"baseline": {"kvm_pages_zapped": {"value": N, "basis": "derived"}, ...},
                           "numa-protect": {..., "kvm_unmap_calls_avoided": {...}}, ...}}],
     "processes": [... same shape, non-VM processes ...],
     "trace": {"events", "lost_events", "event_counts"}, "vmstat_delta": {...}}

This package never imports ``tracereplay.replay``, ``.reconstruct`` or
``.policies`` (tests/test_synth.py enforces it): the truth is computed by
simulating every policy's rules directly while the trace is generated.

The model (what the simulated kernel does)
==========================================

Memory is tracked in 2 MiB blocks; every scanned VMA, guest RAM, pinned range
and the working set are 2 MiB aligned. A block is one huge PMD when its
process maps RAM with THP, else 512 PTEs ("items": 1 or 512 per block).
Each process's VMAs, in address order: two ``shared_ro`` text VMAs, a 32 MiB
heap, guest RAM / the main region (the memslot, GPA 0), a 16 MiB device BAR
(``unsuitable``), per thread a 4 KiB guard (``inaccessible``) and an 8 MiB
stack, two ``shared_ro`` library VMAs. Everything except RAM is populated
and never touched again ("cold"); RAM blocks are hot (``hot_fraction``,
touched by their owner thread right after every scan that covers them) or
cold. Guests with ``boot_seconds`` first touch their RAM progressively, in
address order, from their first scan on (a first touch falling between two
task_numa_work calls is emitted after the first call's events and before the
next call's, in the order the simulation applies it).

Trace-start state (stated identically in tracereplay.reconstruct.pages): no
page is PROT_NONE; the SPTE of every guest page populated before the trace
(every page of a guest without ``boot_seconds``) is present; a booting
guest's pages have never been present until their first touch. KVM flushes
whenever a zap hits a present SPTE, so in the trace a never-present page is
recognisable: its first fault comes before any invalidation covering it, or
the first NUMA invalidation covering it sent no KVM flush — except a page
first covered by an invalidation that flushed for other pages, which the
replay takes as populated (a guest booting faster than the scan walks its RAM
makes the two disagree; the built-in ``vm-boot-contention`` scans ahead of
its boot front).

task_numa_work (kernel/sched/fair.c) runs once per ``scan_period_min_ms``
per process (first after ``scan_delay_ms``), on a thread chosen round-robin
(a vCPU thread: the stack is ``task_numa_work`` <- ``xfer_to_guest_mode_handle_work``).
It walks the VMAs from ``numa_scan_offset`` exactly like the kernel:
skipped VMAs emit ``sched_skip_vma_numa`` (``numa_scan_offset`` printed is
the offset at entry); for a scanned VMA, repeated ranges
``[start, min(ALIGN(start + pages*4K, 2M), vm_end))`` each go to one
``change_prot_numa()`` call; ``pages`` (scan_size) only decreases when that
call updated at least one PTE, ``virtpages`` (8 x scan_size) always. When the
VMA list ends, the offset wraps to 0 and a pass is complete.

One change_prot_numa(range) call, baseline (the traced kernel):

* one ``kvm_unmap_hva_range`` per notifier granule of the range (for VMs):
  the range split at 512 GiB (P4D) boundaries from 6.12, at 1 GiB (PUD)
  boundaries before (kernel.KernelModel.notifier_granule), each with the NUMA
  stack when stacks are on. KVM zaps every present SPTE of the range's
  intersection with the memslot; if it zapped one, it requests one remote
  flush, plus ``(zapped_pages - 1) // zap_yield_pages`` more while the guest
  boots and ``zap_yield_pages`` > 0 (mmu_lock yields under contention). A
  flush IPIs the CPUs of the other vCPUs (all in guest mode; never the
  scanning CPU): ``csd_queue_cpu func=ack_kick`` per target then one
  ``ipi_send_cpu``/``ipi_send_cpumask`` with the generic callback on 6.6+;
  ``ipi_send_cpumask callback=ack_kick`` (plus the generic IPI) on 6.4-6.5;
  ``ipi_send_*`` with ``callback=ack_kick`` on 6.3.
* the primary MMU makes PROT_NONE every block not already PROT_NONE and not
  skipped for a pin: 6.3..6.18 skip pinned blocks of private mappings unless
  THP-mapped (kernel.KernelModel.pin_skip "cow": the page-refcount test of
  commit 80d47f5de5e3 through 6.9, folio_maybe_dma_pinned() from 6.10); 6.19
  skips every pinned block.
* if at least one PTE/PMD changed: one host TLB flush: ``tlb_flush`` "remote
  IPI send", IPIs with ``flush_tlb_func`` to the CPUs of the process's other
  threads, "local MM shootdown", and "remote shootdown" on each target.

Accesses after a scan, by each block's owner thread: a vCPU whose SPTE is not
present takes an EPT violation (``kvm_page_fault``, not-present qualification
0x181/0x182, one per item); only then does KVM's GUP reach the host PTE, so a
PROT_NONE block takes a hint fault (no ``page_fault_user``). Host threads
take the hint fault as ``page_fault_user`` (0x4/0x6). A hint fault on a block
whose node differs from the thread's node attempts a migration per item
(``mm_migrate_pages`` reason numa_misplaced; for VMs preceded by a one-item
``kvm_unmap_hva_range`` with a migration stack): pinned blocks fail, others
move to the thread's node. At the end of a pass on a multi-node host, a
thread whose hint faults were mostly on another node is placed there
(``sched_move_numa`` to a free CPU, else ``sched_swap_numa`` with a thread of
the same process, else ``sched_stick_numa``).

Counting rules of the truth (per process, only work caused by NUMA balancing)
============================================================================

Baseline = what the simulation emitted (events lost by ``[[lost]]`` gaps are
still counted: the truth is what the kernel did):

* ``numa_invalidations``: ``kvm_unmap_hva_range`` events of task_numa_work
  (NUMA stack); migration unmaps are not counted. 0 for non-VM processes.
* ``kvm_unmap_calls``: those of them whose range intersects the memslot.
* ``kvm_pages_zapped``: 4 KiB pages of present SPTEs they zapped (a huge SPTE
  counts 512).
* ``kvm_remote_flushes``: flush requests as above (1 per invalidation that
  zapped a present SPTE, plus the yield flushes), whether or not they IPI'd.
* ``tlb_shootdown_ipis``: target CPUs of the KVM flushes (= ``csd_queue_cpu
  func=ack_kick`` count on 6.6+) plus target CPUs of the host flushes
  (``func=flush_tlb_func``).
* ``numa_pte_updates``: 512 per guest-RAM block made PROT_NONE (4 KiB units,
  a huge PMD counts 512); ``numa_huge_pte_updates``: huge PMDs of guest RAM
  made PROT_NONE. Per process these count guest RAM (the memslot / the main
  region) only, what a trace plus manifest can attribute to the VM; the
  manifest's vmstat snapshots stay host-wide (heap, stacks, every process).
* ``numa_hint_faults``: guest-RAM items faulted while PROT_NONE (per 4 KiB
  page, or per 2 MiB THP); a vCPU only reaches the PTE through an EPT
  violation, so a PROT_NONE page whose SPTE is still present takes none.
* ``spte_refaults``: ``kvm_page_fault`` events on an item whose SPTE a NUMA
  invalidation had zapped (first touches of a booting guest are not refaults).
* ``migrations_attempted``: ``mm_migrate_pages`` (numa_misplaced) calls, one
  per item; ``migrations_failed``: those with nr_failed > 0 (pinned);
  ``pages_migrated``: sum of nr_succeeded (4 KiB pages).
* ``task_numa_placements``: ``sched_move_numa`` + ``sched_swap_numa`` +
  ``sched_stick_numa`` events of the process's threads.

Counterfactual policies replay the *same* task_numa_work calls and ranges
(the scan schedule is held fixed) on their own per-block state (PROT_NONE,
SPTE present/zapped, node); thread placements are held as in the baseline:

* ``notifier-flag``: the primary MMU also skips pinned blocks of private
  mappings, THP or not (RFC patch 2). Same invalidations and unmap calls as
  the baseline (KVM still walks the range) but KVM zaps only unpinned present
  SPTEs (its check is page_maybe_dma_pinned, whatever the mapping); one
  flush (and its IPIs) per invalidation that zapped a present SPTE — the
  mmu_lock yield flushes are the traced kernel's, not modelled for the
  counterfactuals (the replay's rule: one remote flush per invalidation that
  still zapped something); the same holds for ``per-vma-optout``.
* ``numa-protect`` (batch=1): primary MMU as notifier-flag; invalidations
  still reach KVM (counted) but zap nothing; one ``.numa_protect()`` call
  (``kvm_unmap_calls``) per item made PROT_NONE inside the memslot (per 4 KiB
  PTE, or per PMD of a THP memslot), zapping that item's SPTE if present, with
  one flush (and its IPIs) per call that zapped a present SPTE.
* ``per-mm-optout``: every metric is 0 for the process.
* ``per-vma-optout``: the pinned ranges are VMAs that are never scanned: each
  call's range minus the pinned ranges splits into pieces, each piece one
  change_prot_numa() call with the baseline rules (its own granules,
  invalidations, zaps, flushes, host flush).
* Accesses are the same under every policy (same blocks, same times); the
  rules above then give refaults, hint faults and migrations per policy.
  ``<metric>_avoided`` = baseline - policy for every non-baseline policy.

``est_cpu_us`` (the engine's cost model) is not part of the truth.
"""

from tracereplay.synth.generate import SynthResult, generate
from tracereplay.synth.scenario import BUILTIN, Scenario, ScenarioError, load_scenario

__all__ = ["BUILTIN", "Scenario", "ScenarioError", "SynthResult", "generate", "load_scenario"]
