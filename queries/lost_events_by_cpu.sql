-- lost_events_by_cpu: events the tracer reported lost, per CPU.
--
-- Observed from the tracer's own markers; a gap whose size was not reported
-- counts in gaps but not in lost.
--
-- @column cpu    CPU whose ring buffer overflowed
-- @column gaps   lost-event markers
-- @column lost   events reported lost
SELECT cpu, count(*) AS gaps, coalesce(sum(count), 0)::BIGINT AS lost
FROM lost_events
GROUP BY cpu
ORDER BY cpu;
