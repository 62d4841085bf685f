-- vm_scan_summary: per VM, what NUMA balancing's scans did to its guest RAM.
--
-- One row per process with NUMA-scan KVM invalidations (cause numa_scan; after
-- `analyze`, stack-less traces have inferred causes too). Scan passes are
-- counted from the ranges: task_numa_work walks the address space upwards
-- from mm->numa_scan_offset, so a range starting below its predecessor opens a
-- new pass. Guest and pinned pages need the manifest's memslots / pinned
-- ranges (0 without them); pages are interval arithmetic on the ranges.
--
-- @column tgid                  VMM process
-- @column numa_invalidations    NUMA-scan kvm_unmap_hva_range events
-- @column scan_passes           passes over the address space (started in the trace)
-- @column guest_pages_covered   4 KiB guest pages inside those ranges (with repeats)
-- @column pinned_pages_covered  of which in pinned ranges
-- @column first_ts              first NUMA-scan invalidation, ns
-- @column last_ts               last NUMA-scan invalidation, ns
WITH n AS (
    SELECT seq, ts, coalesce(tgid, pid) AS tgid, hva_start, hva_end,
           CASE WHEN hva_start < lag(hva_start) OVER (PARTITION BY coalesce(tgid, pid) ORDER BY ts, seq)
                THEN 1 ELSE 0 END AS wraps
    FROM kvm_unmaps WHERE cause = 'numa_scan'
),
g AS (
    SELECT n.seq, sum(overlap_bytes(n.hva_start, n.hva_end, m.hva_start, m.hva_end)) // 4096 AS pages
    FROM n JOIN memslots m ON m.tgid = n.tgid AND m.hva_start < n.hva_end AND n.hva_start < m.hva_end
    GROUP BY n.seq
),
p AS (
    SELECT n.seq, sum(overlap_bytes(n.hva_start, n.hva_end, r.hva_start, r.hva_end)) // 4096 AS pages
    FROM n JOIN pinned_ranges r ON r.tgid = n.tgid AND r.hva_start < n.hva_end AND n.hva_start < r.hva_end
    GROUP BY n.seq
)
SELECT n.tgid, count(*) AS numa_invalidations, 1 + sum(n.wraps)::BIGINT AS scan_passes,
       coalesce(sum(g.pages), 0)::BIGINT AS guest_pages_covered,
       coalesce(sum(p.pages), 0)::BIGINT AS pinned_pages_covered,
       min(n.ts) AS first_ts, max(n.ts) AS last_ts
FROM n LEFT JOIN g USING (seq) LEFT JOIN p USING (seq)
GROUP BY n.tgid
ORDER BY n.tgid;
