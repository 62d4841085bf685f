-- vm_scan_summary: per VM, what NUMA balancing's scans did to its guest RAM.
--
-- One row per process with NUMA-scan KVM invalidations (cause numa_scan; after
-- `analyze`, stack-less traces have inferred causes too). Scan passes are
-- counted from the ranges: task_numa_work walks the address space upwards
-- from mm->numa_scan_offset, so a range starting below its predecessor opens a
-- new pass. Guest and pinned pages need the manifest's memslots / pinned
-- ranges (0 without them); pages are interval arithmetic on the ranges.
--
-- @column tgid                  VMM process
-- @column numa_invalidations    NUMA-scan kvm_unmap_hva_range events
-- @column scan_passes           passes over the address space (started in the trace)
-- @column guest_pages_covered   4 KiB guest pages inside those ranges (with repeats)
-- @column pinned_pages_covered  of which in pinned ranges
-- @column first_ts              first NUMA-scan invalidation, ns
-- @column last_ts               last NUMA-scan invalidation, ns
SELECT tgid, count(*) AS numa_invalidations, max(pass) AS scan_passes,
       sum(guest_pages)::BIGINT AS guest_pages_covered,
       sum(pinned_pages)::BIGINT AS pinned_pages_covered,
       min(ts) AS first_ts, max(ts) AS last_ts
FROM numa_scan_ranges()
GROUP BY tgid
ORDER BY tgid;
