-- page_faults_by_process: user page faults per process, split by region.
--
-- Observed. With a manifest, faults are split into those inside the process's
-- pinned ranges, inside its other memslots/regions, and elsewhere; NUMA hint
-- faults on x86 are not-present faults (error code bit 0 clear).
--
-- @column tgid          process id (thread id when the trace has no tgid)
-- @column region        pinned | unpinned | other (other = outside the manifest's ranges, or no manifest)
-- @column faults        page_fault_user events
-- @column not_present   of which not-present faults (error_code bit 0 clear)
-- @column pages         distinct 4 KiB pages faulted
WITH f AS (
    SELECT coalesce(tgid, pid) AS tgid, address, error_code FROM page_faults
),
tagged AS (
    SELECT f.*,
           CASE WHEN EXISTS (SELECT 1 FROM pinned_ranges p
                             WHERE p.tgid = f.tgid AND f.address >= p.hva_start AND f.address < p.hva_end)
                THEN 'pinned'
                WHEN EXISTS (SELECT 1 FROM memslots m
                             WHERE m.tgid = f.tgid AND f.address >= m.hva_start AND f.address < m.hva_end)
                THEN 'unpinned'
                ELSE 'other' END AS region
    FROM f
)
SELECT tgid, region, count(*) AS faults,
       count(*) FILTER (WHERE error_code & 1 = 0) AS not_present,
       count(DISTINCT address >> 12) AS pages
FROM tagged
GROUP BY ALL
ORDER BY tgid, region;
