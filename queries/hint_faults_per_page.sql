-- hint_faults_per_page: per VM page, its faults and the NUMA hint faults among them.
--
-- A fault is a NUMA fault when a NUMA-scan invalidation covered its page since
-- the page's previous fault: for a vCPU (kvm:kvm_page_fault, gpa -> hva through
-- the memslot's gpa_start) the scan zapped the SPTE, so this is the refault;
-- for a host thread (exceptions:page_fault_user, not-present error code) it is
-- the fault on the PROT_NONE PTE. It is a hint fault when the scan also made
-- the page PROT_NONE, i.e. the traced kernel (trace_info.kernel_release; like
-- 6.18 when unknown) did not skip it for a pin: pinned pages are protected
-- before 6.10, in shared mappings and in THP memslots before 6.19, never
-- otherwise (tracereplay.reconstruct.kernel). A THP memslot's page is its
-- 2 MiB PMD. Only pages with faults appear (one row per page, from the fault
-- events). The replay's page model (tracereplay.reconstruct.pages) also tells
-- first touches of never-present pages apart; this query counts them as NUMA
-- faults when a scan preceded them.
--
-- @column tgid         process
-- @column page_hva     host virtual address of the page (4 KiB, or 2 MiB in a THP memslot)
-- @column page_size    4096 or 2097152
-- @column pinned       inside a long-term pinned range
-- @column faults       faults on the page
-- @column numa_faults  of which first after a NUMA scan covered the page
-- @column hint_faults  of which on a page the scan made PROT_NONE
WITH kern AS (
    SELECT coalesce(try_cast(regexp_extract(max(kernel_release), '^(\d+)\.', 1) AS INTEGER), 6) * 100
           + coalesce(try_cast(regexp_extract(max(kernel_release), '^\d+\.(\d+)', 1) AS INTEGER), 18) AS v
    FROM trace_info
),
slot AS (
    SELECT tgid, hva_start, hva_end, gpa_start, shared, coalesce(thp, false) AS thp,
           CASE WHEN coalesce(thp, false) THEN 2097152 ELSE 4096 END AS unit
    FROM memslots
),
vf AS (
    SELECT f.seq, f.ts, f.tgid, s.hva_start + (f.gpa - s.gpa_start) // s.unit * s.unit AS page,
           s.unit, s.shared, s.thp
    FROM kvm_faults f JOIN slot s
      ON s.tgid = f.tgid AND s.gpa_start IS NOT NULL
     AND f.gpa >= s.gpa_start AND f.gpa < s.gpa_start + (s.hva_end - s.hva_start)
    WHERE f.kind = 'page_fault'
),
hf AS (
    SELECT p.seq, p.ts, p.tgid,
           CASE WHEN s.tgid IS NULL THEN p.address // 4096 * 4096
                ELSE s.hva_start + (p.address - s.hva_start) // s.unit * s.unit END AS page,
           coalesce(s.unit, 4096) AS unit,
           coalesce(s.shared, false) AS shared, coalesce(s.thp, false) AS thp
    FROM page_faults p LEFT JOIN slot s
      ON s.tgid = p.tgid AND p.address >= s.hva_start AND p.address < s.hva_end
    WHERE p.error_code & 1 = 0 AND p.tgid IN (SELECT tgid FROM vms)
),
allf AS (SELECT * FROM vf UNION ALL SELECT * FROM hf),
lagged AS (
    SELECT *, lag(ts) OVER (PARTITION BY tgid, page ORDER BY ts, seq) AS prev_ts FROM allf
),
numa AS (
    SELECT DISTINCT l.seq
    FROM lagged l JOIN kvm_unmaps k
      ON coalesce(k.tgid, k.pid) = l.tgid AND k.hva_start <= l.page AND l.page < k.hva_end
     AND k.ts < l.ts AND k.ts > coalesce(l.prev_ts, -1)
    WHERE k.cause = 'numa_scan'
),
per_page AS (
    SELECT l.tgid, l.page, any_value(l.unit) AS unit, any_value(l.shared) AS shared,
           any_value(l.thp) AS thp, count(*) AS faults, count(n.seq) AS numa_faults
    FROM lagged l LEFT JOIN numa n USING (seq)
    GROUP BY l.tgid, l.page
),
flagged AS (
    SELECT p.*, EXISTS (SELECT 1 FROM pinned_ranges r WHERE r.tgid = p.tgid
                        AND r.hva_start <= p.page AND p.page < r.hva_end) AS pinned
    FROM per_page p
)
SELECT f.tgid, f.page::UBIGINT AS page_hva, f.unit::BIGINT AS page_size, f.pinned,
       f.faults::BIGINT AS faults, f.numa_faults::BIGINT AS numa_faults,
       (CASE WHEN NOT f.pinned OR kern.v < 610 OR ((f.shared OR f.thp) AND kern.v < 619)
             THEN f.numa_faults ELSE 0 END)::BIGINT AS hint_faults
FROM flagged f, kern
ORDER BY hint_faults DESC, numa_faults DESC, f.tgid, page_hva;
