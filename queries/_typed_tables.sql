-- _typed_tables: fill the typed tables (kvm_unmaps, tlb_flushes, ipis, ...) from `event_rows`.
--
-- Private module run by the store after the events are loaded. Every typed
-- table is a projection of `event_rows.args` (field names from the tracepoint
-- format files), so all input formats share this one definition. Each table
-- decodes the JSON once per row with json_transform (one typed struct), not
-- once per field. The store runs a statement only when an event it names in
-- `FROM event_rows WHERE name = ...` / `IN (...)` was loaded (keep that shape).

-- Address ranges no kernel can produce (range_problem, store/schema.py: reversed,
-- beyond user space, unreadable) stay in events but not in the typed tables the
-- replay reads; they are listed here and the ingest warns.
INSERT INTO invalid_ranges
SELECT seq, name, a.start, a."end", range_problem(a.start, a."end")
FROM (SELECT seq, name, json_transform(args, '{"start": "UBIGINT", "end": "UBIGINT"}') AS a
      FROM event_rows WHERE name = 'kvm_unmap_hva_range')
WHERE range_problem(a.start, a."end") IS NOT NULL;

INSERT INTO invalid_ranges
SELECT seq, name, a.vm_start, a.vm_end, range_problem(a.vm_start, a.vm_end)
FROM (SELECT seq, name, json_transform(args, '{"vm_start": "UBIGINT", "vm_end": "UBIGINT"}') AS a
      FROM event_rows WHERE name = 'sched_skip_vma_numa')
WHERE range_problem(a.vm_start, a.vm_end) IS NOT NULL;

INSERT INTO kvm_unmaps (seq, ts, cpu, pid, tgid, hva_start, hva_end, cause, cause_evidence)
SELECT seq, ts, cpu, pid, tgid, a.start, a."end",
       -- the stack, when recorded, is direct evidence of the cause:
       -- NUMA scans reach KVM from task_numa_work -> change_prot_numa. A stack
       -- of bare addresses (perf -g callchains without kallsyms) names no
       -- function: no evidence, the cause is inferred as without a stack
       CASE WHEN NOT symbolized THEN 'unknown'
            WHEN list_has_any(stack, ['task_numa_work', 'change_prot_numa']) THEN 'numa_scan'
            ELSE 'other' END AS cause,
       CASE WHEN NOT symbolized THEN 'none' ELSE 'stack' END AS cause_evidence
FROM (SELECT *, json_transform(args, '{"start": "UBIGINT", "end": "UBIGINT"}') AS a,
             coalesce(NOT list_bool_and(list_transform(stack, lambda f: starts_with(f, '0x'))),
                      false) AS symbolized
      FROM event_rows WHERE name = 'kvm_unmap_hva_range')
WHERE range_problem(a.start, a."end") IS NULL;

-- most rows of these four events were written to their table directly (store/split.py),
-- the ones left in event_rows are those whose args do not render back from it
INSERT INTO tlb_flushes
SELECT seq, ts, cpu, pid, tgid,
       tlb_flush_reason(a.reason) AS reason,
       a.reason AS reason_code,
       -- TLB_FLUSH_ALL is ULONG_MAX, printed as -1
       CASE WHEN a.pages >= 9223372036854775808 THEN -1 ELSE a.pages::BIGINT END AS pages,
       comm, stack
FROM (SELECT *, json_transform(args, '{"reason": "INTEGER", "pages": "UBIGINT"}') AS a
      FROM event_rows WHERE name = 'tlb_flush');

INSERT INTO ipis
SELECT seq, ts, cpu, pid, tgid, len(targets) AS n_targets, targets, callsite, callback, comm, stack
FROM (
    SELECT seq, ts, cpu, pid, tgid, comm, stack,
           CASE WHEN name = 'ipi_send_cpu' THEN [a.cpu]
                ELSE flatten(list_transform(
                        list_filter(string_split(coalesce(a.cpumask, ''), ','), lambda r: r <> ''),
                        lambda r: CASE WHEN contains(r, '-')
                                  THEN range(split_part(r, '-', 1)::INTEGER, split_part(r, '-', 2)::INTEGER + 1)
                                  ELSE [r::INTEGER] END))::INTEGER[] END AS targets,
           a.callsite, a.callback
    FROM (SELECT *, json_transform(args,
                 '{"cpu": "INTEGER", "cpumask": "VARCHAR", "callsite": "VARCHAR", "callback": "VARCHAR"}') AS a
          FROM event_rows WHERE name IN ('ipi_send_cpu', 'ipi_send_cpumask'))
);

-- csd (6.6+) prints %p: the raw pointer in trace.dat / perf.data, hashed (or
-- "(____ptrval____)" early in boot) in tracefs text, "0x..." in some tools' output
INSERT INTO csd_queues
SELECT seq, ts, cpu, pid, tgid, a.cpu AS target_cpu, a.callsite, a.func,
       TRY_CAST('0x' || regexp_replace(a.csd, '^0x', '') AS UBIGINT) AS csd, comm, stack
FROM (SELECT *, json_transform(args,
             '{"cpu": "INTEGER", "callsite": "VARCHAR", "func": "VARCHAR", "csd": "VARCHAR"}') AS a
      FROM event_rows WHERE name = 'csd_queue_cpu');

INSERT INTO numa_vma_skips
SELECT seq, ts, cpu, pid, tgid, a.vm_start, a.vm_end, a.numa_scan_offset, a.reason, comm, stack
FROM (SELECT *, json_transform(args,
             '{"vm_start": "UBIGINT", "vm_end": "UBIGINT", "numa_scan_offset": "UBIGINT", "reason": "VARCHAR"}') AS a
      FROM event_rows WHERE name = 'sched_skip_vma_numa')
WHERE range_problem(a.vm_start, a.vm_end) IS NULL;

-- most page_fault_user rows were written to page_faults directly (store/split.py),
-- the ones left in event_rows are those whose args were not exactly three numbers
INSERT INTO page_faults
SELECT seq, ts, cpu, pid, tgid, a.address, a.ip, a.error_code, comm, stack
FROM (SELECT *, json_transform(args, '{"address": "UBIGINT", "ip": "UBIGINT", "error_code": "UBIGINT"}') AS a
      FROM event_rows WHERE name = 'page_fault_user');

-- kvm_page_fault rows of 6.1+ were mostly written to kvm_faults directly (store/split.py)
INSERT INTO kvm_faults
SELECT seq, ts, cpu, pid, tgid,
       CASE name WHEN 'kvm_page_fault' THEN 'page_fault'
                 WHEN 'kvm_tdp_mmu_spte_changed' THEN 'spte_changed'
                 ELSE 'set_spte' END AS kind,
       a.vcpu_id AS vcpu,
       CASE WHEN name = 'kvm_page_fault' THEN a.fault_address ELSE a.gfn << 12 END AS gpa,
       a.error_code, a.level, a.old_spte, coalesce(a.new_spte, a.spte) AS new_spte,
       a.guest_rip, comm, stack
FROM (SELECT *, json_transform(args,
             '{"vcpu_id": "INTEGER", "fault_address": "UBIGINT", "gfn": "UBIGINT", "error_code": "UBIGINT",
               "level": "INTEGER", "old_spte": "UBIGINT", "new_spte": "UBIGINT", "spte": "UBIGINT",
               "guest_rip": "UBIGINT"}') AS a
      FROM event_rows WHERE name IN ('kvm_page_fault', 'kvm_tdp_mmu_spte_changed', 'kvm_mmu_set_spte'));

INSERT INTO migrations
SELECT seq, ts, cpu, pid, tgid, a.succeeded, a.failed, a.thp_succeeded, a.thp_failed, a.thp_split, a.mode, a.reason
FROM (SELECT *, json_transform(args,
             '{"succeeded": "BIGINT", "failed": "BIGINT", "thp_succeeded": "BIGINT", "thp_failed": "BIGINT",
               "thp_split": "BIGINT", "mode": "VARCHAR", "reason": "VARCHAR"}') AS a
      FROM event_rows WHERE name = 'mm_migrate_pages');

INSERT INTO task_numa
SELECT seq, ts,
       replace(replace(name, 'sched_', ''), '_numa', '') AS kind,
       coalesce(a.pid, a.src_pid) AS pid,
       coalesce(a.tgid, a.src_tgid) AS tgid,
       a.src_cpu, a.src_nid, a.dst_cpu, a.dst_nid, a.dst_pid
FROM (SELECT *, json_transform(args,
             '{"pid": "INTEGER", "tgid": "INTEGER", "src_pid": "INTEGER", "src_tgid": "INTEGER",
               "src_cpu": "INTEGER", "src_nid": "INTEGER", "dst_cpu": "INTEGER", "dst_nid": "INTEGER",
               "dst_pid": "INTEGER"}') AS a
      FROM event_rows WHERE name IN ('sched_move_numa', 'sched_swap_numa', 'sched_stick_numa'));
