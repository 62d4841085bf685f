-- pages_zapped_per_pass: per VM and NUMA scan pass, the guest pages whose SPTEs the scan zapped.
--
-- Upstream KVM zaps every guest page of a NUMA invalidation's range (DESIGN
-- §4), so the pages zapped per pass are the guest pages the pass's ranges
-- cover; those that had a present SPTE (the replay's kvm_pages_zapped) can
-- only be fewer. A range starting below its predecessor opens a new pass.
--
-- @column tgid                VMM process
-- @column pass                scan pass number, from 1 (the first seen in the trace)
-- @column invalidations       NUMA-scan invalidations in the pass
-- @column guest_pages_zapped  4 KiB guest pages covered (upstream zaps them all)
-- @column pinned_pages_zapped of which in pinned ranges
-- @column start_ts            first invalidation of the pass, ns
-- @column end_ts              last invalidation of the pass, ns
WITH n AS (
    SELECT seq, ts, coalesce(tgid, pid) AS tgid, hva_start, hva_end,
           CASE WHEN hva_start < lag(hva_start) OVER (PARTITION BY coalesce(tgid, pid) ORDER BY ts, seq)
                THEN 1 ELSE 0 END AS wraps
    FROM kvm_unmaps WHERE cause = 'numa_scan'
),
np AS (
    SELECT *, 1 + sum(wraps) OVER (PARTITION BY tgid ORDER BY ts, seq) AS pass FROM n
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
SELECT np.tgid, np.pass::BIGINT AS pass, count(*) AS invalidations,
       coalesce(sum(g.pages), 0)::BIGINT AS guest_pages_zapped,
       coalesce(sum(p.pages), 0)::BIGINT AS pinned_pages_zapped,
       min(np.ts) AS start_ts, max(np.ts) AS end_ts
FROM np LEFT JOIN g USING (seq) LEFT JOIN p USING (seq)
GROUP BY np.tgid, np.pass
ORDER BY np.tgid, np.pass;
