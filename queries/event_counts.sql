-- event_counts: how many events of each type the trace holds.
--
-- Observed: one row per event name, most frequent first.
--
-- @column system  tracepoint subsystem (null when the text format did not say and the event is not a known one)
-- @column name    event name without subsystem
-- @column events  number of events
SELECT any_value(system) AS system, name, count(*) AS events
FROM events
GROUP BY name
ORDER BY events DESC, name;
