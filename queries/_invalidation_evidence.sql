-- _invalidation_evidence: what each KVM invalidation's own task did around it.
--
-- Private module run by tracereplay.reconstruct.causes before it classifies
-- the invalidations (its docstring states the rules). Expects the temp table
-- `_cause_syscalls(name, nr)`: the syscalls that invalidate, with their x86-64
-- numbers for raw_syscalls ids. One stream of markers per task, in trace
-- order (ts, then seq: text timestamps are only microseconds), and for each
-- invalidation the last marker before it and the first after it:
--   syscall  sys_enter_<name> / sys_exit_<name>, or raw_syscalls sys_enter /
--            sys_exit by id (a raw id not in the list is a syscall of no
--            interest: it still closes the previous window);
--   fault    exceptions:page_fault_user (user mode only: the task was not in
--            a syscall);
--   migrate  migrate:mm_migrate_pages_start / mm_migrate_pages;
--   skip     sched:sched_skip_vma_numa (task_numa_work is running).
-- `epoch` counts the task's user-mode markers (syscall edges, user faults):
-- two invalidations with the same epoch were raised without the task going
-- back to user space in between (one task_numa_work call, for NUMA chunks).
-- Only the tasks that raised an invalidation have markers that matter: a busy host's
-- other tasks fault millions of pages. Syscall and migration events are never kept
-- only in a typed table, so they are read from event_rows (the rows under events).
CREATE OR REPLACE TEMP TABLE _invalidation_evidence AS
WITH tasks AS (SELECT DISTINCT pid FROM kvm_unmaps),
sys AS (
    SELECT e.seq, e.ts, e.pid,
           CASE WHEN e.name IN ('sys_enter', 'sys_exit') THEN c.name
                ELSE regexp_extract(e.name, '^sys_(?:enter|exit)_(\w+)$', 1) END AS syscall,
           starts_with(e.name, 'sys_enter') AS is_enter
    FROM event_rows e
    LEFT JOIN _cause_syscalls c
           ON e.name IN ('sys_enter', 'sys_exit')
          AND c.nr = TRY_CAST(json_extract_string(e.args, '$.id') AS INTEGER)
    WHERE (e.name LIKE 'sys\_enter%' ESCAPE '\' OR e.name LIKE 'sys\_exit%' ESCAPE '\')
      AND e.pid IN (SELECT pid FROM tasks)
),
markers AS (
    SELECT seq, ts, pid,
           CASE WHEN is_enter THEN 'enter' ELSE 'exit' END AS kind,
           CASE WHEN syscall IN (SELECT name FROM _cause_syscalls) THEN syscall END AS detail,
           NULL::UBIGINT AS a, NULL::UBIGINT AS b, NULL::UBIGINT AS c
    FROM sys
    UNION ALL
    SELECT seq, ts, pid, 'fault', NULL, address, error_code, NULL FROM page_faults
    WHERE pid IN (SELECT pid FROM tasks)
    UNION ALL
    SELECT seq, ts, pid, 'skip', reason, vm_start, vm_end, numa_scan_offset FROM numa_vma_skips
    WHERE pid IN (SELECT pid FROM tasks)
    UNION ALL
    SELECT seq, ts, pid, CASE WHEN name = 'mm_migrate_pages' THEN 'mexit' ELSE 'menter' END,
           NULL, NULL, NULL, NULL
    FROM event_rows WHERE name IN ('mm_migrate_pages', 'mm_migrate_pages_start')
      AND pid IN (SELECT pid FROM tasks)
),
-- every invalidation and marker in one order, (ts, seq); then each invalidation's
-- nearest markers of its task before and after by ASOF joins: O(n log n). Window
-- frames with IGNORE NULLS over every page fault of a task took minutes (a 1 M-fault
-- task: 40 s; 4.7 M: over 10 min)
numbered AS (
    SELECT seq, ts, pid, kind, m, row_number() OVER (ORDER BY ts, seq) AS ord
    FROM (
        SELECT seq, ts, pid, 'invalidation' AS kind, NULL AS m FROM kvm_unmaps
        UNION ALL
        SELECT seq, ts, pid, kind,
               {'kind': kind, 'detail': detail, 'seq': seq, 'ts': ts, 'a': a, 'b': b, 'c': c}
        FROM markers
    )
),
inv AS (SELECT seq, pid, ord FROM numbered WHERE kind = 'invalidation'),
-- user-mode markers, numbered per task: the epoch of an invalidation is the number
-- of its task's user-mode markers before it
user_m AS (
    SELECT pid, ord, m, row_number() OVER (PARTITION BY pid ORDER BY ord) AS n
    FROM numbered WHERE kind IN ('enter', 'exit', 'fault')
),
mig_m AS (SELECT pid, ord, m FROM numbered WHERE kind IN ('menter', 'mexit')),
skip_m AS (SELECT pid, ord, m FROM numbered WHERE kind = 'skip'),
ordered AS (
    SELECT i.seq, ub.m AS user_before, ua.m AS user_after, mb.m AS mig_before,
           ma.m AS mig_after, sb.m AS skip_before, sa.m AS skip_after,
           coalesce(ub.n, 0) AS epoch
    FROM inv i
    ASOF LEFT JOIN user_m ub ON i.pid = ub.pid AND i.ord > ub.ord
    ASOF LEFT JOIN user_m ua ON i.pid = ua.pid AND i.ord < ua.ord
    ASOF LEFT JOIN mig_m mb ON i.pid = mb.pid AND i.ord > mb.ord
    ASOF LEFT JOIN mig_m ma ON i.pid = ma.pid AND i.ord < ma.ord
    ASOF LEFT JOIN skip_m sb ON i.pid = sb.pid AND i.ord > sb.ord
    ASOF LEFT JOIN skip_m sa ON i.pid = sa.pid AND i.ord < sa.ord
)
SELECT k.seq, k.ts, k.pid, coalesce(k.tgid, k.pid) AS tgid, k.hva_start, k.hva_end,
       k.cause_evidence = 'stack' AS has_stack,
       -- the cause class a symbolized stack shows, in the inference's precedence:
       -- NUMA scan, a listed syscall's entry point, a COW fault, a migration
       CASE WHEN k.cause_evidence <> 'stack' THEN NULL
            WHEN k.cause = 'numa_scan' THEN 'numa_scan'
            ELSE coalesce(
                list_intersect(
                    list_transform(e.stack, lambda f: regexp_extract(
                        f, '^__(?:x64|ia32|arm64|riscv|s390x|se|do)_sys_(\w+)$', 1)),
                    (SELECT list(name) FROM _cause_syscalls))[1],
                CASE WHEN list_has_any(e.stack, ['do_wp_page', 'wp_page_copy', 'do_huge_pmd_wp_page'])
                     THEN 'cow_fault'
                     WHEN list_has_any(e.stack, ['migrate_pages', 'migrate_pages_batch',
                                                 'try_to_migrate_one'])
                     THEN 'migration' END,
                'other') END AS stack_kind,
       o.user_before, o.user_after, o.mig_before, o.mig_after, o.skip_before, o.skip_after,
       o.epoch
-- event_rows: the kvm_unmap_hva_range rows (with their stacks) under the events view
FROM kvm_unmaps k JOIN ordered o ON o.seq = k.seq JOIN event_rows e ON e.seq = k.seq
ORDER BY tgid, k.ts, k.seq;
