-- ipis_by_callback: IPIs sent per process and callback.
--
-- Observed. flush_tlb_func is a host TLB shootdown; ack_kick (ack_flush on
-- older kernels) is KVM's remote request to vCPUs, e.g. a remote TLB flush.
--
-- @column tgid      sending process id (thread id when the trace has no tgid)
-- @column callback  function run on the target CPUs
-- @column ipis      IPI send events
-- @column targets   IPIs counted per target CPU
SELECT coalesce(tgid, pid) AS tgid, coalesce(callback, '?') AS callback,
       count(*) AS ipis, sum(n_targets)::BIGINT AS targets
FROM ipis
GROUP BY ALL
ORDER BY tgid, targets DESC, callback;
