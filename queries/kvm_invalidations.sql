-- kvm_invalidations: KVM mmu-notifier invalidations per process and cause.
--
-- Observed counts; guest_ram_bytes needs the manifest's memslots (it is 0
-- without them): the part of each invalidated range inside guest RAM, the only
-- part that can zap SPTEs.
--
-- @column tgid             VMM process id (thread id when the trace has no tgid)
-- @column cause            numa_scan | other | unknown (unknown without stack traces)
-- @column cause_evidence   stack | inferred | none
-- @column invalidations    kvm_unmap_hva_range events
-- @column bytes            host virtual bytes the ranges covered
-- @column guest_ram_bytes  bytes of those ranges inside the process's memslots
WITH u AS (
    SELECT seq, coalesce(tgid, pid) AS tgid, cause, cause_evidence, hva_start, hva_end FROM kvm_unmaps
),
inside AS (
    SELECT u.seq, sum(overlap_bytes(u.hva_start, u.hva_end, m.hva_start, m.hva_end)) AS bytes
    FROM u JOIN memslots m ON m.tgid = u.tgid AND m.hva_start < u.hva_end AND u.hva_start < m.hva_end
    GROUP BY u.seq
)
SELECT u.tgid, u.cause, u.cause_evidence, count(*) AS invalidations,
       sum(u.hva_end - u.hva_start)::HUGEINT AS bytes,
       coalesce(sum(inside.bytes), 0)::HUGEINT AS guest_ram_bytes
FROM u LEFT JOIN inside USING (seq)
GROUP BY ALL
ORDER BY u.tgid, invalidations DESC;
