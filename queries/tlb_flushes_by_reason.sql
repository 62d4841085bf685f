-- tlb_flushes_by_reason: host TLB flushes per process and normalized reason.
--
-- Observed. Reasons are normalized to lower case across kernel spellings
-- ("local MM shootdown" and "local mm shootdown" are one reason).
--
-- @column tgid     process id (thread id when the trace has no tgid)
-- @column reason   normalized reason
-- @column flushes  tlb_flush events
-- @column full_flushes  of which flushed the whole TLB (pages = -1)
-- @column pages    pages flushed by the partial flushes
SELECT coalesce(tgid, pid) AS tgid, reason, count(*) AS flushes,
       count(*) FILTER (WHERE pages = -1) AS full_flushes,
       coalesce(sum(pages) FILTER (WHERE pages >= 0), 0)::BIGINT AS pages
FROM tlb_flushes
GROUP BY ALL
ORDER BY tgid, flushes DESC, reason;
