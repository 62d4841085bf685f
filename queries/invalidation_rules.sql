-- invalidation_rules: KVM invalidations of each process by cause class and the rule that decided it.
--
-- After `analyze`: cause_kind and cause_rule come from
-- tracereplay.reconstruct.causes (docs/CAUSES.md); `stack` is exact, the other
-- rules are inference from the invalidating task's own events. On a database
-- that was only ingested, stack-less invalidations show no kind and no rule.
--
-- @column tgid           process (the VMM)
-- @column cause          numa_scan | other | unknown
-- @column cause_kind     numa_scan, a syscall (madvise, munmap, clone, ...), cow_fault, migration, other
-- @column cause_rule     stack | syscall | cow | migration | seed | chain | scan_period | default
-- @column invalidations  kvm_unmap_hva_range events
-- @column pages          4 KiB pages of the ranges (with repeats)
-- @column guest_pages    of them inside the process's memslots (what KVM zaps)
WITH u AS (
    SELECT seq, coalesce(tgid, pid) AS tgid, cause, cause_kind, cause_rule, hva_start, hva_end
    FROM kvm_unmaps
),
inside AS (
    SELECT u.seq, sum(overlap_bytes(u.hva_start, u.hva_end, m.hva_start, m.hva_end)) // 4096 AS pages
    FROM u JOIN memslots m ON m.tgid = u.tgid AND m.hva_start < u.hva_end AND u.hva_start < m.hva_end
    GROUP BY u.seq
)
SELECT u.tgid, u.cause, u.cause_kind, u.cause_rule, count(*) AS invalidations,
       sum((u.hva_end - u.hva_start) // 4096)::BIGINT AS pages,
       coalesce(sum(inside.pages), 0)::BIGINT AS guest_pages
FROM u LEFT JOIN inside USING (seq)
GROUP BY ALL
ORDER BY u.tgid, u.cause, u.cause_kind, u.cause_rule;
