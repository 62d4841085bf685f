-- _invalidation_pages: the guest pages and IPIs of every NUMA-scan invalidation of a VM.
--
-- Private module run by the reconstruction once causes are classified. Page
-- counts are interval arithmetic on ranges (never one row per page). IPIs are
-- attributed to the invalidation they follow: same task, after it, before the
-- task's next invalidation, before the task's next kvm_page_fault (the vCPU is
-- back in the guest: task_numa_work is over) and within 50 ms. task_numa_work
-- handles one chunk at a time: the notifier (KVM zaps the range, which takes
-- milliseconds for a GiB of SPTEs, then flushes remote TLBs), then the PTE
-- changes, then the host TLB flush of that range.
-- Host shootdowns are IPIs whose callback is flush_tlb_func; on hosts where
-- they go through smp_call_function_single (2 CPUs) the IPI's callback is
-- generic and only csd:csd_queue_cpu (csd_queues) names flush_tlb_func, so those count.

DELETE FROM invalidation_pages;

INSERT INTO invalidation_pages
WITH u AS (
    SELECT k.seq, k.ts, k.pid, k.tgid, k.hva_start, k.hva_end,
           lead(k.ts) OVER (PARTITION BY k.pid ORDER BY k.ts, k.seq) AS next_ts
    FROM kvm_unmaps k
),
numa0 AS (
    SELECT u.* FROM u JOIN kvm_unmaps k USING (seq)
    WHERE k.cause = 'numa_scan' AND u.tgid IN (SELECT tgid FROM vms WHERE kind = 'vm')
),
vcpu_faults AS (SELECT pid, ts FROM kvm_faults WHERE kind = 'page_fault'),
numa AS (
    SELECT n.*,
           least(coalesce(n.next_ts, n.ts + 50000000), coalesce(f.ts, n.ts + 50000000),
                 n.ts + 50000000) AS win_end
    FROM numa0 n ASOF LEFT JOIN vcpu_faults f ON n.pid = f.pid AND f.ts > n.ts
),
slot AS (
    SELECT n.seq, m.shared,
           overlap_bytes(n.hva_start, n.hva_end, m.hva_start, m.hva_end) AS bytes,
           greatest(n.hva_start, m.hva_start) AS lo, least(n.hva_end, m.hva_end) AS hi
    FROM numa n JOIN memslots m ON m.tgid = n.tgid AND m.hva_start < n.hva_end AND n.hva_start < m.hva_end
),
pin AS (
    SELECT s.seq, s.shared,
           sum(overlap_bytes(s.lo, s.hi, p.hva_start, p.hva_end)) AS bytes
    FROM slot s JOIN numa n USING (seq)
    JOIN pinned_ranges p ON p.tgid = n.tgid AND p.hva_start < s.hi AND s.lo < p.hva_end
    GROUP BY s.seq, s.shared
),
pages AS (
    SELECT n.seq,
           coalesce((SELECT sum(bytes) FROM slot WHERE slot.seq = n.seq), 0) // 4096 AS guest_pages,
           coalesce((SELECT sum(bytes) FROM pin WHERE pin.seq = n.seq), 0) // 4096 AS pinned_pages,
           coalesce((SELECT sum(bytes) FROM slot WHERE slot.seq = n.seq AND slot.shared), 0) // 4096 AS shared_pages,
           coalesce((SELECT sum(bytes) FROM pin WHERE pin.seq = n.seq AND pin.shared), 0) // 4096 AS shared_pinned_pages
    FROM numa n
),
use_ipi_callback AS (SELECT count(*) > 0 AS yes FROM ipis WHERE callback = 'flush_tlb_func'),
shootdowns AS (
    SELECT ts, pid, n_targets AS targets FROM ipis WHERE callback = 'flush_tlb_func'
    UNION ALL
    SELECT ts, pid, 1 AS targets FROM csd_queues
    WHERE func = 'flush_tlb_func' AND NOT (SELECT yes FROM use_ipi_callback)
),
use_kvm_callback AS (SELECT count(*) > 0 AS yes FROM ipis WHERE callback IN ('ack_kick', 'ack_flush')),
kvm_flushes AS (
    -- since 6.6 (commit bf5a8c26ad7c) the IPI shows the generic handler and
    -- csd_queue_cpu names the callback, one event per target CPU
    SELECT ts, pid, n_targets AS targets FROM ipis WHERE callback IN ('ack_kick', 'ack_flush')
    UNION ALL
    SELECT ts, pid, 1 AS targets FROM csd_queues
    WHERE func IN ('ack_kick', 'ack_flush') AND NOT (SELECT yes FROM use_kvm_callback)
),
attributed AS (
    SELECT n.seq,
           coalesce((SELECT sum(targets) FROM shootdowns s
                     WHERE s.pid = n.pid AND s.ts >= n.ts AND s.ts < n.win_end), 0) AS host_ipis,
           coalesce((SELECT sum(targets) FROM kvm_flushes f
                     WHERE f.pid = n.pid AND f.ts >= n.ts AND f.ts < n.win_end), 0) AS kvm_ipis,
           -- distinct flush requests: one request IPIs all its targets at one timestamp
           coalesce((SELECT count(DISTINCT f.ts) FROM kvm_flushes f
                     WHERE f.pid = n.pid AND f.ts >= n.ts AND f.ts < n.win_end), 0) AS kvm_requests
    FROM numa n
)
SELECT n.seq, n.ts, n.pid, n.tgid, n.hva_start, n.hva_end,
       p.guest_pages::BIGINT AS guest_pages, p.pinned_pages::BIGINT AS pinned_pages,
       p.shared_pages::BIGINT AS shared_pages, p.shared_pinned_pages::BIGINT AS shared_pinned_pages,
       a.host_ipis::BIGINT AS host_shootdown_ipis, a.kvm_ipis::BIGINT AS kvm_flush_ipis,
       a.kvm_requests::BIGINT AS kvm_flush_requests
FROM numa n JOIN pages p USING (seq) JOIN attributed a USING (seq)
ORDER BY n.ts, n.seq;
