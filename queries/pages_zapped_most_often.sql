-- pages_zapped_most_often: the guest RAM ranges NUMA scans zapped most often, as page runs.
--
-- Interval sweep over the NUMA-scan invalidations clipped to the memslots: the
-- range ends cut guest RAM into runs of pages covered by the same number of
-- invalidations (never one row per page). Upstream KVM zaps every page of a
-- NUMA invalidation, so times_zapped is how often each page's SPTE was zapped
-- (at most; a page without a present SPTE zaps nothing). Ordered by
-- times_zapped, most first.
--
-- @column tgid          VMM process
-- @column hva_start     first host virtual address of the run
-- @column hva_end       end of the run (exclusive)
-- @column pages         4 KiB pages in the run
-- @column times_zapped  NUMA-scan invalidations covering every page of the run
WITH clipped AS (
    SELECT coalesce(k.tgid, k.pid) AS tgid,
           greatest(k.hva_start, m.hva_start) AS lo, least(k.hva_end, m.hva_end) AS hi
    FROM kvm_unmaps k JOIN memslots m
      ON m.tgid = coalesce(k.tgid, k.pid) AND m.hva_start < k.hva_end AND k.hva_start < m.hva_end
    WHERE k.cause = 'numa_scan'
),
edges AS (
    SELECT tgid, addr, sum(delta) AS delta FROM (
        SELECT tgid, lo AS addr, 1 AS delta FROM clipped
        UNION ALL
        SELECT tgid, hi AS addr, -1 AS delta FROM clipped
    ) GROUP BY tgid, addr
),
runs AS (
    SELECT tgid, addr AS hva_start, lead(addr) OVER w AS hva_end, sum(delta) OVER w AS depth
    FROM edges
    WINDOW w AS (PARTITION BY tgid ORDER BY addr ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT tgid, hva_start, hva_end, ((hva_end - hva_start) // 4096)::BIGINT AS pages,
       depth::BIGINT AS times_zapped
FROM runs
WHERE hva_end IS NOT NULL AND depth > 0
ORDER BY times_zapped DESC, pages DESC, tgid, hva_start;
