WITH ev AS MATERIALIZED (
  SELECT eventID, ts_principal(userIdentity) AS _p, eventSource || ':' || eventName AS _raw, date_trunc('day', eventTime) AS _day
  FROM cloudtrail
  WHERE ts_is_caller(userIdentity, eventType) AND true
), daily_raw AS (
  SELECT _p, _raw, _day FROM ev WHERE _p LIKE 'arn:%' GROUP BY ALL
), value_of AS (
  SELECT _raw, _raw AS _v FROM (SELECT DISTINCT _raw FROM daily_raw)
), daily AS (
  SELECT DISTINCT _p, _v, _day FROM daily_raw JOIN value_of USING (_raw) WHERE _v IS NOT NULL
), principals AS (
  SELECT _p, min(_day) AS since, count(DISTINCT _v) AS n_values FROM daily GROUP BY _p
), fresh AS (
  SELECT d._p, d._v, d._day, lag(d._day) OVER (PARTITION BY d._p, d._v ORDER BY d._day) AS prev,
         p.since, p.n_values
  FROM daily d JOIN principals p USING (_p)
), flagged AS (
  SELECT _p, _v, _day,
         format('first {} {} for this principal{}; history since {} ({} distinct)',
                'API', _v,
                CASE WHEN prev IS NULL THEN '' ELSE format(' in {} days (last {})',
                     getvariable('baseline_days'), strftime(prev, '%Y-%m-%d')) END,
                strftime(since, '%Y-%m-%d'), n_values) AS evidence
  FROM fresh
  WHERE _day >= since + INTERVAL 1 DAY * getvariable('min_history_days')
    AND (prev IS NULL OR _day - prev > INTERVAL 1 DAY * getvariable('baseline_days'))
    AND true
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN value_of USING (_raw)
      JOIN flagged USING (_p, _v, _day)) ids USING (eventID)
