"""DuckDB tables of the canonical data model, with a comment per column.

Unsigned 64-bit values (addresses, SPTEs, error codes) are UBIGINT, never
BIGINT two's complement: a kernel address such as ``0xffffffff81000000`` is
stored, compared and printed as the unsigned number it is, in the typed tables
and in ``events.args`` (whose JSON numbers are the fields' unsigned values, see
:mod:`tracereplay.schema`). Timestamps are BIGINT nanoseconds in the trace
clock. ``tgid`` is null where the trace did not record it.

Address ranges no kernel can produce (end before start, or an end above
:data:`USER_SPACE_END`, the top of the largest user address space) are kept in
``events`` but left out of ``kvm_unmaps`` / ``numa_vma_skips`` and so out of the
replay; they are listed in ``invalid_ranges`` and the ingest warns (partial).
"""

from __future__ import annotations

from tracereplay.store.split import USER_SPACE_END, events_view_sql

# table -> (table comment, [(column, type, comment)])
TABLES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "trace_info": (
        "One row describing the ingested trace.",
        [
            ("source_path", "VARCHAR", "path of the trace file"),
            ("format", "VARCHAR", "ftrace-text | trace-dat | perf-data | perfetto"),
            ("kernel_release", "VARCHAR", "kernel release (from the trace or the manifest)"),
            ("clock", "VARCHAR", "trace clock when known"),
            ("cpus", "INTEGER", "CPUs in the trace"),
            ("event_count", "BIGINT", "events decoded"),
            ("lost_event_count", "BIGINT", "events the tracer reported lost (known counts)"),
            ("lost_gaps", "BIGINT", "lost-event gaps reported"),
            ("partial", "BOOLEAN", "true when part of the input could not be decoded"),
            ("warnings", "VARCHAR[]", "reader warnings"),
            ("recorder_options", "JSON", "recorder / layout options seen in the trace"),
            ("manifest_path", "VARCHAR", "VM manifest used, if any"),
            ("tracereplay_version", "VARCHAR", "version that wrote this database"),
        ],
    ),
    "event_rows": (
        "The events stored as rows with their JSON args: all but those kept only in a typed "
        "table (page_fault_user, see tracereplay.store.split). Query the events view instead.",
        [
            ("seq", "BIGINT", "position in the source: line number (text) or record number"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU the event was recorded on"),
            ("pid", "INTEGER", "task (thread) id"),
            ("tgid", "INTEGER", "process id, null when not recorded"),
            ("comm", "VARCHAR", "task name"),
            ("system", "VARCHAR", "tracepoint subsystem, null when unknown"),
            ("name", "VARCHAR", "event name without subsystem"),
            ("args", "VARCHAR", "JSON object: fields by format-file name (see tracereplay.schema)"),
            ("stack", "VARCHAR[]", "kernel stack (symbols, innermost first) when recorded"),
        ],
    ),
    "lost_events": (
        "Each gap the tracer reported.",
        [
            ("cpu", "INTEGER", "CPU whose buffer lost events"),
            ("ts", "BIGINT", "time of the gap when known"),
            ("count", "BIGINT", "events lost, null when the tracer did not count them"),
            ("seq", "BIGINT", "position of the marker in the source"),
        ],
    ),
    "kvm_unmaps": (
        "kvm:kvm_unmap_hva_range: KVM's mmu-notifier invalidate_range_start.",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU"),
            ("pid", "INTEGER", "task that caused the invalidation"),
            ("tgid", "INTEGER", "its process (the VMM)"),
            ("hva_start", "UBIGINT", "first host virtual address"),
            ("hva_end", "UBIGINT", "end (exclusive)"),
            ("cause", "VARCHAR", "numa_scan | other | unknown"),
            ("cause_evidence", "VARCHAR", "stack | inferred | none"),
            (
                "cause_kind",
                "VARCHAR",
                "finer class after analyze: numa_scan, a syscall (madvise, munmap, ...), "
                "cow_fault, migration, other",
            ),
            (
                "cause_rule",
                "VARCHAR",
                "rule that decided it (tracereplay.reconstruct.causes): stack, syscall, cow, "
                "migration, seed, chain, scan_period, default",
            ),
            ("cause_ref", "BIGINT", "events.seq of the evidence (syscall entry, fault, skip, ...)"),
        ],
    ),
    "tlb_flushes": (
        "tlb:tlb_flush: host TLB flushes (never EPT/NPT flushes).",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU"),
            ("pid", "INTEGER", "task"),
            ("tgid", "INTEGER", "process"),
            ("reason", "VARCHAR", "normalized lower-case reason name"),
            ("reason_code", "INTEGER", "enum tlb_flush_reason value"),
            ("pages", "BIGINT", "pages flushed; -1 = TLB_FLUSH_ALL"),
            ("comm", "VARCHAR", "task name"),
            ("stack", "VARCHAR[]", "kernel stack when recorded"),
        ],
    ),
    "ipis": (
        "ipi:ipi_send_cpu / ipi_send_cpumask.",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "sending CPU"),
            ("pid", "INTEGER", "sending task"),
            ("tgid", "INTEGER", "its process"),
            ("n_targets", "INTEGER", "number of target CPUs"),
            ("targets", "INTEGER[]", "target CPUs"),
            ("callsite", "VARCHAR", "caller symbol"),
            ("callback", "VARCHAR", "function run on the targets (flush_tlb_func, ack_kick, ...)"),
            ("comm", "VARCHAR", "task name"),
            ("stack", "VARCHAR[]", "kernel stack when recorded"),
        ],
    ),
    "csd_queues": (
        "csd:csd_queue_cpu (6.6+, commit bf5a8c26ad7c): a function queued to run on a CPU "
        "(smp_call_function*); names the callback of single-target IPIs, e.g. the TLB "
        "shootdowns of a 2-CPU host (whose IPI names the generic handler).",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "queuing CPU"),
            ("pid", "INTEGER", "queuing task"),
            ("tgid", "INTEGER", "its process"),
            ("target_cpu", "INTEGER", "CPU the function runs on"),
            ("callsite", "VARCHAR", "caller symbol"),
            ("func", "VARCHAR", "function queued (flush_tlb_func, ack_kick, ...)"),
            ("csd", "UBIGINT", "call_single_data address (raw; text traces print it hashed)"),
            ("comm", "VARCHAR", "task name"),
            ("stack", "VARCHAR[]", "kernel stack when recorded"),
        ],
    ),
    "numa_vma_skips": (
        "sched:sched_skip_vma_numa: VMAs task_numa_work skipped.",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU"),
            ("pid", "INTEGER", "scanning task"),
            ("tgid", "INTEGER", "its process"),
            ("vm_start", "UBIGINT", "VMA start"),
            ("vm_end", "UBIGINT", "VMA end"),
            ("numa_scan_offset", "UBIGINT", "mm->numa_scan_offset"),
            ("reason", "VARCHAR", "unsuitable | shared_ro | inaccessible | scan_delay | ..."),
            ("comm", "VARCHAR", "task name"),
            ("stack", "VARCHAR[]", "kernel stack when recorded"),
        ],
    ),
    "page_faults": (
        "exceptions:page_fault_user.",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU"),
            ("pid", "INTEGER", "faulting task"),
            ("tgid", "INTEGER", "its process"),
            ("address", "UBIGINT", "faulting address"),
            ("ip", "UBIGINT", "instruction pointer"),
            ("error_code", "UBIGINT", "x86 page-fault error code"),
            ("comm", "VARCHAR", "task name"),
            ("stack", "VARCHAR[]", "kernel stack when recorded"),
        ],
    ),
    "kvm_faults": (
        "kvm:kvm_page_fault and SPTE events (kvmmmu).",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU"),
            ("pid", "INTEGER", "vCPU thread"),
            ("tgid", "INTEGER", "VMM process"),
            ("kind", "VARCHAR", "page_fault | spte_changed | set_spte"),
            ("vcpu", "INTEGER", "vCPU id when printed"),
            ("gpa", "UBIGINT", "guest physical address (gfn << 12 for SPTE events)"),
            ("error_code", "UBIGINT", "EPT exit qualification (VMX) or #NPF error code (SVM)"),
            ("level", "INTEGER", "SPTE level (SPTE events)"),
            ("old_spte", "UBIGINT", "previous SPTE (spte_changed)"),
            ("new_spte", "UBIGINT", "new SPTE"),
            ("guest_rip", "UBIGINT", "guest instruction pointer (kvm_page_fault, 6.1+)"),
            ("comm", "VARCHAR", "task name"),
            ("stack", "VARCHAR[]", "kernel stack when recorded"),
        ],
    ),
    "migrations": (
        "migrate:mm_migrate_pages.",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("cpu", "INTEGER", "CPU"),
            ("pid", "INTEGER", "migrating task"),
            ("tgid", "INTEGER", "its process"),
            ("succeeded", "BIGINT", "pages migrated"),
            ("failed", "BIGINT", "pages that failed"),
            ("thp_succeeded", "BIGINT", "THPs migrated"),
            ("thp_failed", "BIGINT", "THPs failed"),
            ("thp_split", "BIGINT", "THPs split"),
            ("mode", "VARCHAR", "MIGRATE_ASYNC | MIGRATE_SYNC_LIGHT | MIGRATE_SYNC"),
            ("reason", "VARCHAR", "numa_misplaced, compaction, ..."),
        ],
    ),
    "task_numa": (
        "sched:sched_move_numa / sched_swap_numa / sched_stick_numa.",
        [
            ("seq", "BIGINT", "events.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("kind", "VARCHAR", "move | swap | stick"),
            ("pid", "INTEGER", "task placed (src task for swap/stick)"),
            ("tgid", "INTEGER", "its process"),
            ("src_cpu", "INTEGER", "source CPU"),
            ("src_nid", "INTEGER", "source node"),
            ("dst_cpu", "INTEGER", "destination CPU"),
            ("dst_nid", "INTEGER", "destination node"),
            ("dst_pid", "INTEGER", "the other task of a swap"),
        ],
    ),
    "vms": (
        "VMs (VMM processes) and other processes of interest, from the manifest.",
        [
            ("tgid", "INTEGER", "process id"),
            ("name", "VARCHAR", "name"),
            ("kind", "VARCHAR", "vm | process"),
            ("source", "VARCHAR", "manifest | inferred"),
        ],
    ),
    "memslots": (
        "Guest RAM ranges (or the regions of a non-VM process).",
        [
            ("tgid", "INTEGER", "process"),
            ("hva_start", "UBIGINT", "start"),
            ("hva_end", "UBIGINT", "end (exclusive)"),
            ("gpa_start", "UBIGINT", "guest physical start, null for non-VM regions"),
            (
                "shared",
                "BOOLEAN",
                "shared mapping (memfd, virtiofs): kernels before 6.19 protect its pinned pages",
            ),
            ("thp", "BOOLEAN", "mapped with THP: protected and refaulted one 2 MiB PMD at a time"),
        ],
    ),
    "process_threads": (
        "Thread ids the manifest lists for its processes (tids), known at recording time.",
        [
            ("tgid", "INTEGER", "process"),
            ("pid", "INTEGER", "thread id"),
        ],
    ),
    "pinned_ranges": (
        "Long-term pinned ranges.",
        [
            ("tgid", "INTEGER", "process"),
            ("hva_start", "UBIGINT", "start"),
            ("hva_end", "UBIGINT", "end (exclusive)"),
            ("source", "VARCHAR", "manifest | assumed | inferred"),
        ],
    ),
    "invalidation_pages": (
        "NUMA-scan invalidations of VMs with the guest pages they cover (filled by the reconstruction).",
        [
            ("seq", "BIGINT", "kvm_unmaps.seq"),
            ("ts", "BIGINT", "timestamp, ns"),
            ("pid", "INTEGER", "scanning task"),
            ("tgid", "INTEGER", "VM"),
            ("hva_start", "UBIGINT", "range start"),
            ("hva_end", "UBIGINT", "range end (exclusive)"),
            ("guest_pages", "BIGINT", "4 KiB pages of the range inside memslots"),
            ("pinned_pages", "BIGINT", "of which inside pinned ranges"),
            ("shared_pages", "BIGINT", "of which in shared-mapping memslots"),
            ("shared_pinned_pages", "BIGINT", "pinned pages in shared-mapping memslots"),
            (
                "host_shootdown_ipis",
                "BIGINT",
                "host TLB shootdown IPIs (per target CPU) the scanning task sent for this chunk",
            ),
            (
                "kvm_flush_ipis",
                "BIGINT",
                "KVM remote-flush IPIs (ack_kick / ack_flush, per target CPU) sent for this chunk",
            ),
            (
                "kvm_flush_requests",
                "BIGINT",
                "distinct KVM remote-flush requests (IPI bursts) for this chunk",
            ),
        ],
    ),
    "invalid_ranges": (
        "Address ranges no kernel can produce: kept in events, left out of the typed tables "
        "and the replay (the ingest warns).",
        [
            ("seq", "BIGINT", "events.seq"),
            ("name", "VARCHAR", "event name"),
            ("range_start", "UBIGINT", "start as recorded (null when unreadable)"),
            ("range_end", "UBIGINT", "end as recorded (null when unreadable)"),
            ("reason", "VARCHAR", "reversed | beyond user space | unreadable"),
        ],
    ),
    "replay_metrics": (
        "Counterfactual metrics per policy and VM or replayed process.",
        [
            ("policy", "VARCHAR", "policy name"),
            ("tgid", "INTEGER", "VM or process"),
            ("metric", "VARCHAR", "metric name"),
            ("value", "DOUBLE", "value"),
            ("basis", "VARCHAR", "observed | derived | assumed"),
            ("scope", "VARCHAR", "vm | process (a replayed non-VM process, no KVM part)"),
        ],
    ),
}


# Views: name -> (comment, [(column, comment)], CREATE VIEW statement)
VIEWS: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "events": (
        "Every decoded event of every type (canonical schema, tracereplay.schema): event_rows "
        "and the events kept only in typed tables, their args rendered when read.",
        [(name, doc) for name, _typ, doc in TABLES["event_rows"][1]],
        events_view_sql(),
    ),
}


# Macros the named queries share (interval arithmetic on address ranges).
MACROS = f"""
-- why a user-space address range [s, e) is impossible, NULL when it is fine
CREATE MACRO range_problem(s, e) AS
    CASE WHEN s IS NULL OR e IS NULL THEN 'unreadable'
         WHEN e < s THEN 'reversed'
         WHEN e > {USER_SPACE_END}::UBIGINT THEN 'beyond user space' END;
-- enum tlb_flush_reason (arch/x86/include/asm/tlbflush.h) as tlb_flushes.reason; the
-- printed names changed case in late 2025, the values did not
CREATE MACRO tlb_flush_reason(code) AS
    CASE code
         WHEN 0 THEN 'flush on task switch'
         WHEN 1 THEN 'remote shootdown'
         WHEN 2 THEN 'local shootdown'
         WHEN 3 THEN 'local mm shootdown'
         WHEN 4 THEN 'remote ipi send'
         WHEN 5 THEN 'remote wrong cpu'
         ELSE 'reason ' || code END;
CREATE MACRO overlap_bytes(a_start, a_end, b_start, b_end) AS
    greatest(0::HUGEINT, least(a_end, b_end)::HUGEINT - greatest(a_start, b_start)::HUGEINT);
-- every NUMA-scan invalidation with its scan pass and the 4 KiB guest / pinned pages
-- its range covers; task_numa_work walks upwards from mm->numa_scan_offset, so a
-- range starting below its predecessor opens a new pass (numbered from 1)
CREATE MACRO numa_scan_ranges() AS TABLE
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
SELECT n.seq, n.ts, n.tgid,
       (1 + sum(n.wraps) OVER (PARTITION BY n.tgid ORDER BY n.ts, n.seq))::BIGINT AS pass,
       coalesce(g.pages, 0)::BIGINT AS guest_pages, coalesce(p.pages, 0)::BIGINT AS pinned_pages
FROM n LEFT JOIN g USING (seq) LEFT JOIN p USING (seq);
"""


# Storage hints (types and contents stay as above). event_rows.args is most of the
# data; zstd writes it smaller than DuckDB's default choice (FSST) for less than
# half the CPU (5.5 M trace.dat rows: 47 vs 73 MB, 0.6 vs 1.4 CPU-s).
COMPRESSION = {("event_rows", "args"): "zstd"}


def ddl() -> str:
    """CREATE TABLE / VIEW and COMMENT statements for every table and view, and the shared
    macros."""
    out = []
    for table, (comment, columns) in TABLES.items():
        cols = ",\n  ".join(
            f"{name} {typ}"
            + (
                f" USING COMPRESSION {COMPRESSION[table, name]}"
                if (table, name) in COMPRESSION
                else ""
            )
            for name, typ, _doc in columns
        )
        out.append(f"CREATE TABLE {table} (\n  {cols}\n);")
        out.append(f"COMMENT ON TABLE {table} IS {_quote(comment)};")
        for name, _typ, doc in columns:
            out.append(f"COMMENT ON COLUMN {table}.{name} IS {_quote(doc)};")
    for view, (view_comment, view_columns, sql) in VIEWS.items():
        out.append(sql)
        out.append(f"COMMENT ON VIEW {view} IS {_quote(view_comment)};")
        for name, doc in view_columns:
            out.append(f"COMMENT ON COLUMN {view}.{name} IS {_quote(doc)};")
    out.append(MACROS)  # after the tables: DuckDB binds a table macro when it is created
    return "\n".join(out)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


__all__ = ["COMPRESSION", "TABLES", "USER_SPACE_END", "VIEWS", "ddl"]
