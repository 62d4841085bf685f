-- pages_zapped_per_pass: per VM and NUMA scan pass, the guest pages whose SPTEs the scan zapped.
--
-- Upstream KVM zaps every guest page of a NUMA invalidation's range
-- (kvm_mmu_notifier_invalidate_range_start), so the pages zapped per pass are the guest pages the pass's ranges
-- cover; those that had a present SPTE (the replay's kvm_pages_zapped) can
-- only be fewer. A range starting below its predecessor opens a new pass.
--
-- @column tgid                VMM process
-- @column pass                scan pass number, from 1 (the first seen in the trace)
-- @column invalidations       NUMA-scan invalidations in the pass
-- @column guest_pages_zapped  4 KiB guest pages covered (upstream zaps them all)
-- @column pinned_pages_zapped of which in pinned ranges
-- @column start_ts            first invalidation of the pass, ns
-- @column end_ts              last invalidation of the pass, ns
SELECT tgid, pass, count(*) AS invalidations,
       sum(guest_pages)::BIGINT AS guest_pages_zapped,
       sum(pinned_pages)::BIGINT AS pinned_pages_zapped,
       min(ts) AS start_ts, max(ts) AS end_ts
FROM numa_scan_ranges()
GROUP BY tgid, pass
ORDER BY tgid, pass;
