-- process_activity: observed NUMA-relevant activity per process.
--
-- One row per process (tgid; the thread id where the trace did not record
-- tgids), with the counts the NUMA-balancing analysis starts from. All values
-- are observed (counted from events).
--
-- @column tgid              process id (thread id when the trace has no tgid)
-- @column comm              most frequent task name of the process
-- @column events            events attributed to the process
-- @column kvm_invalidations kvm_unmap_hva_range events
-- @column kvm_invalidated_bytes  bytes of host virtual address space those invalidations covered
-- @column tlb_flushes       tlb_flush events
-- @column ipis              IPI send events
-- @column ipi_targets       IPIs counted per target CPU
-- @column user_page_faults  page_fault_user events
-- @column vma_skips         sched_skip_vma_numa events
-- @column migrations_succeeded pages migrated (mm_migrate_pages)
-- @column task_numa_placements sched_move/swap/stick_numa events
WITH e AS (
    SELECT coalesce(tgid, pid) AS tgid, comm, name FROM events
),
procs AS (
    SELECT tgid, mode(comm) AS comm, count(*) AS events FROM e GROUP BY tgid
),
unmaps AS (
    SELECT coalesce(tgid, pid) AS tgid, count(*) AS n, sum(hva_end - hva_start) AS bytes
    FROM kvm_unmaps GROUP BY ALL
),
flushes AS (SELECT coalesce(tgid, pid) AS tgid, count(*) AS n FROM tlb_flushes GROUP BY ALL),
ipi AS (
    SELECT coalesce(tgid, pid) AS tgid, count(*) AS n, sum(n_targets) AS targets
    FROM ipis GROUP BY ALL
),
faults AS (SELECT coalesce(tgid, pid) AS tgid, count(*) AS n FROM page_faults GROUP BY ALL),
skips AS (SELECT coalesce(tgid, pid) AS tgid, count(*) AS n FROM numa_vma_skips GROUP BY ALL),
mig AS (SELECT coalesce(tgid, pid) AS tgid, sum(succeeded) AS n FROM migrations GROUP BY ALL),
placements AS (SELECT tgid, count(*) AS n FROM task_numa GROUP BY ALL)
SELECT p.tgid, p.comm, p.events,
       coalesce(unmaps.n, 0) AS kvm_invalidations,
       coalesce(unmaps.bytes, 0)::HUGEINT AS kvm_invalidated_bytes,
       coalesce(flushes.n, 0) AS tlb_flushes,
       coalesce(ipi.n, 0) AS ipis,
       coalesce(ipi.targets, 0)::BIGINT AS ipi_targets,
       coalesce(faults.n, 0) AS user_page_faults,
       coalesce(skips.n, 0) AS vma_skips,
       coalesce(mig.n, 0)::BIGINT AS migrations_succeeded,
       coalesce(placements.n, 0) AS task_numa_placements
FROM procs p
LEFT JOIN unmaps USING (tgid)
LEFT JOIN flushes USING (tgid)
LEFT JOIN ipi USING (tgid)
LEFT JOIN faults USING (tgid)
LEFT JOIN skips USING (tgid)
LEFT JOIN mig USING (tgid)
LEFT JOIN placements USING (tgid)
ORDER BY kvm_invalidations DESC, user_page_faults DESC, tlb_flushes DESC, p.events DESC, p.tgid;
