-- _page_timeline: defines the table macro page_timeline(tgid, hva).
--
-- Private module run by the reconstruction. page_timeline(tgid, hva) returns,
-- in ts order, everything that touched the 4 KiB page containing hva in
-- process tgid, found by interval containment (no per-page rows anywhere):
-- kvm_unmaps ranges containing it (kind numa_scan: the NUMA scan zapped its
-- SPTE and offered it for PROT_NONE; invalidation: other causes), vCPU faults
-- on it (kvm_faults, gpa -> hva through the memslot's gpa_start; in a THP
-- memslot a fault maps the whole 2 MiB PMD), host user faults on it
-- (page_faults), NUMA migrations (migrations: the mm_migrate_pages call that
-- follows a fault on the page by the same task). A fault is a NUMA fault when
-- a NUMA scan covered the page since its previous fault: hint_fault when the
-- scan made the page PROT_NONE (the traced kernel's pin rule, as in the named
-- query hint_faults_per_page; a vCPU's hint fault is also the refault of the
-- zapped SPTE), refault when only the SPTE was zapped (a pinned page the
-- kernel skipped); other faults are fault (first touch, ...).
--
-- Columns: ts, kind, source_table, seq (events.seq), cpu, pid, detail.

CREATE OR REPLACE MACRO page_timeline(p_tgid, p_hva) AS TABLE
WITH pg AS (SELECT (p_hva::UBIGINT // 4096) * 4096 AS lo),
kern AS (
    SELECT coalesce(try_cast(regexp_extract(max(kernel_release), '^(\d+)\.', 1) AS INTEGER), 6) * 100
           + coalesce(try_cast(regexp_extract(max(kernel_release), '^\d+\.(\d+)', 1) AS INTEGER), 18) AS v
    FROM trace_info
),
protected AS (
    -- does a NUMA scan make this page PROT_NONE? (tracereplay.reconstruct.kernel)
    SELECT NOT EXISTS (SELECT 1 FROM pinned_ranges r, pg WHERE r.tgid = p_tgid
                       AND r.hva_start <= pg.lo AND pg.lo < r.hva_end)
           OR kern.v < 610
           OR (kern.v < 619 AND EXISTS (SELECT 1 FROM memslots m, pg WHERE m.tgid = p_tgid
                   AND m.hva_start <= pg.lo AND pg.lo < m.hva_end AND (m.shared OR coalesce(m.thp, false))))
           AS yes
    FROM kern
),
unmaps AS (
    SELECT k.ts, CASE WHEN k.cause = 'numa_scan' THEN 'numa_scan' ELSE 'invalidation' END AS kind,
           'kvm_unmaps' AS source_table, k.seq, k.cpu, k.pid,
           printf('%s range %#x-%#x (%s)', k.cause, k.hva_start, k.hva_end, k.cause_evidence) AS detail
    FROM kvm_unmaps k, pg
    WHERE coalesce(k.tgid, k.pid) = p_tgid AND k.hva_start <= pg.lo AND pg.lo < k.hva_end
),
vcpu AS (
    SELECT f.ts, f.seq, f.cpu, f.pid, f.gpa, f.error_code
    FROM kvm_faults f JOIN memslots m ON m.tgid = f.tgid, pg
    WHERE f.tgid = p_tgid AND f.kind = 'page_fault' AND m.gpa_start IS NOT NULL
      AND f.gpa >= m.gpa_start AND f.gpa < m.gpa_start + (m.hva_end - m.hva_start)
      AND pg.lo >= m.hva_start AND pg.lo < m.hva_end
      AND (m.hva_start + (f.gpa - m.gpa_start)) // (CASE WHEN m.thp THEN 2097152 ELSE 4096 END)
          = pg.lo // (CASE WHEN m.thp THEN 2097152 ELSE 4096 END)
),
host AS (
    SELECT p.ts, p.seq, p.cpu, p.pid, p.address, p.error_code
    FROM page_faults p, pg
    WHERE p.tgid = p_tgid AND p.address // 4096 * 4096 = pg.lo
),
faults AS (
    SELECT ts, seq, cpu, pid, 'kvm_faults' AS source_table,
           printf('vCPU fault gpa %#x error_code %#x', gpa, error_code) AS detail
    FROM vcpu
    UNION ALL
    SELECT ts, seq, cpu, pid, 'page_faults', printf('user fault %#x error_code %#x', address, error_code)
    FROM host
),
faults_k AS (
    SELECT f.*, lag(f.ts) OVER (ORDER BY f.ts, f.seq) AS prev_ts FROM faults f
),
fault_rows AS (
    SELECT f.ts,
           CASE WHEN NOT EXISTS (SELECT 1 FROM unmaps u WHERE u.kind = 'numa_scan' AND u.ts < f.ts
                                 AND (f.prev_ts IS NULL OR u.ts > f.prev_ts))
                THEN 'fault'
                WHEN (SELECT yes FROM protected) THEN 'hint_fault'
                ELSE 'refault' END AS kind,
           f.source_table, f.seq, f.cpu, f.pid, f.detail
    FROM faults_k f
),
migr AS (
    SELECT m.ts, 'migration' AS kind, 'migrations' AS source_table, m.seq, m.cpu, m.pid,
           printf('mm_migrate_pages succeeded=%d failed=%d reason=%s', m.succeeded, m.failed, m.reason) AS detail
    FROM migrations m ASOF JOIN (SELECT * FROM faults) f ON m.pid = f.pid AND f.ts <= m.ts
    WHERE m.tgid = p_tgid
      AND NOT EXISTS (SELECT 1 FROM kvm_faults o WHERE o.pid = m.pid AND o.kind = 'page_fault'
                      AND o.ts > f.ts AND o.ts <= m.ts)
      AND NOT EXISTS (SELECT 1 FROM page_faults o WHERE o.pid = m.pid AND o.ts > f.ts AND o.ts <= m.ts)
)
SELECT ts, kind, source_table, seq, cpu, pid, detail FROM (
    SELECT * FROM unmaps UNION ALL SELECT * FROM fault_rows UNION ALL SELECT * FROM migr
)
ORDER BY ts, seq;
