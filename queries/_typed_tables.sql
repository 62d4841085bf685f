-- _typed_tables: fill the typed tables of DESIGN §3 from `events`.
--
-- Private module run by the store after the events are loaded. Every typed
-- table is a projection of `events.args` (field names from the tracepoint
-- format files), so all input formats share this one definition.

INSERT INTO kvm_unmaps
SELECT seq, ts, cpu, pid, tgid,
       (args->>'start')::UBIGINT AS hva_start,
       (args->>'end')::UBIGINT AS hva_end,
       -- the stack, when recorded, is direct evidence of the cause:
       -- NUMA scans reach KVM from task_numa_work -> change_prot_numa
       CASE WHEN stack IS NULL THEN 'unknown'
            WHEN list_has_any(stack, ['task_numa_work', 'change_prot_numa']) THEN 'numa_scan'
            ELSE 'other' END AS cause,
       CASE WHEN stack IS NULL THEN 'none' ELSE 'stack' END AS cause_evidence
FROM events WHERE name = 'kvm_unmap_hva_range';

INSERT INTO tlb_flushes
SELECT seq, ts, cpu, pid, tgid,
       -- enum tlb_flush_reason (arch/x86/include/asm/tlbflush.h); the printed
       -- names changed case in late 2025, the values did not
       CASE (args->>'reason')::INTEGER
            WHEN 0 THEN 'flush on task switch'
            WHEN 1 THEN 'remote shootdown'
            WHEN 2 THEN 'local shootdown'
            WHEN 3 THEN 'local mm shootdown'
            WHEN 4 THEN 'remote ipi send'
            WHEN 5 THEN 'remote wrong cpu'
            ELSE 'reason ' || (args->>'reason') END AS reason,
       (args->>'reason')::INTEGER AS reason_code,
       -- TLB_FLUSH_ALL is ULONG_MAX, printed as -1
       CASE WHEN (args->>'pages')::UBIGINT >= 9223372036854775808 THEN -1
            ELSE (args->>'pages')::BIGINT END AS pages
FROM events WHERE name = 'tlb_flush';

INSERT INTO ipis
SELECT seq, ts, cpu, pid, tgid, len(targets) AS n_targets, targets, callsite, callback
FROM (
    SELECT seq, ts, cpu, pid, tgid,
           CASE WHEN name = 'ipi_send_cpu' THEN [(args->>'cpu')::INTEGER]
                ELSE flatten(list_transform(
                        list_filter(string_split(coalesce(args->>'cpumask', ''), ','), lambda r: r <> ''),
                        lambda r: CASE WHEN contains(r, '-')
                                  THEN range(split_part(r, '-', 1)::INTEGER, split_part(r, '-', 2)::INTEGER + 1)
                                  ELSE [r::INTEGER] END))::INTEGER[] END AS targets,
           args->>'callsite' AS callsite,
           args->>'callback' AS callback
    FROM events WHERE name IN ('ipi_send_cpu', 'ipi_send_cpumask')
);

INSERT INTO numa_vma_skips
SELECT seq, ts, cpu, pid, tgid,
       (args->>'vm_start')::UBIGINT, (args->>'vm_end')::UBIGINT,
       (args->>'numa_scan_offset')::UBIGINT, args->>'reason'
FROM events WHERE name = 'sched_skip_vma_numa';

INSERT INTO page_faults
SELECT seq, ts, cpu, pid, tgid,
       (args->>'address')::UBIGINT, (args->>'ip')::UBIGINT, (args->>'error_code')::UBIGINT
FROM events WHERE name = 'page_fault_user';

INSERT INTO kvm_faults
SELECT seq, ts, cpu, pid, tgid,
       CASE name WHEN 'kvm_page_fault' THEN 'page_fault'
                 WHEN 'kvm_tdp_mmu_spte_changed' THEN 'spte_changed'
                 ELSE 'set_spte' END AS kind,
       (args->>'vcpu_id')::INTEGER AS vcpu,
       CASE WHEN name = 'kvm_page_fault' THEN (args->>'fault_address')::UBIGINT
            ELSE (args->>'gfn')::UBIGINT << 12 END AS gpa,
       (args->>'error_code')::UBIGINT AS error_code,
       (args->>'level')::INTEGER AS level,
       (args->>'old_spte')::UBIGINT AS old_spte,
       coalesce((args->>'new_spte')::UBIGINT, (args->>'spte')::UBIGINT) AS new_spte
FROM events WHERE name IN ('kvm_page_fault', 'kvm_tdp_mmu_spte_changed', 'kvm_mmu_set_spte');

INSERT INTO migrations
SELECT seq, ts, cpu, pid, tgid,
       (args->>'succeeded')::BIGINT, (args->>'failed')::BIGINT,
       (args->>'thp_succeeded')::BIGINT, (args->>'thp_failed')::BIGINT,
       (args->>'thp_split')::BIGINT, args->>'mode', args->>'reason'
FROM events WHERE name = 'mm_migrate_pages';

INSERT INTO task_numa
SELECT seq, ts,
       replace(replace(name, 'sched_', ''), '_numa', '') AS kind,
       coalesce((args->>'pid')::INTEGER, (args->>'src_pid')::INTEGER) AS pid,
       coalesce((args->>'tgid')::INTEGER, (args->>'src_tgid')::INTEGER) AS tgid,
       (args->>'src_cpu')::INTEGER, (args->>'src_nid')::INTEGER,
       (args->>'dst_cpu')::INTEGER, (args->>'dst_nid')::INTEGER,
       (args->>'dst_pid')::INTEGER
FROM events WHERE name IN ('sched_move_numa', 'sched_swap_numa', 'sched_stick_numa');
