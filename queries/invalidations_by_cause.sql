-- invalidations_by_cause: KVM invalidations of each VM by cause, and how much guest RAM they hit.
--
-- Only the part of a range inside the manifest's memslots can zap SPTEs; the
-- rest (heap, stacks, libraries) reaches KVM and zaps nothing. Causes come
-- from stack traces at ingest, or from the inference rules of
-- tracereplay.reconstruct.causes after `analyze`.
--
-- @column tgid                process (the VMM)
-- @column cause               numa_scan | other | unknown
-- @column cause_evidence      stack | inferred | none
-- @column invalidations       kvm_unmap_hva_range events
-- @column touching_guest_ram  of which intersect a memslot (KVM's unmap path runs)
-- @column guest_pages         4 KiB guest pages inside the ranges (with repeats)
WITH u AS (
    SELECT seq, coalesce(tgid, pid) AS tgid, cause, cause_evidence, hva_start, hva_end FROM kvm_unmaps
),
inside AS (
    SELECT u.seq, sum(overlap_bytes(u.hva_start, u.hva_end, m.hva_start, m.hva_end)) // 4096 AS pages
    FROM u JOIN memslots m ON m.tgid = u.tgid AND m.hva_start < u.hva_end AND u.hva_start < m.hva_end
    GROUP BY u.seq
)
SELECT u.tgid, u.cause, u.cause_evidence, count(*) AS invalidations,
       count(inside.seq) AS touching_guest_ram,
       coalesce(sum(inside.pages), 0)::BIGINT AS guest_pages
FROM u LEFT JOIN inside USING (seq)
GROUP BY ALL
ORDER BY u.tgid, u.cause, u.cause_evidence;
