WITH ev AS MATERIALIZED (
  SELECT eventID, ts_principal(userIdentity) AS _p, date_trunc('hour', eventTime) AS _hour
  FROM cloudtrail WHERE ts_is_caller(userIdentity, eventType)
), hourly AS (
  SELECT _p, _hour, count(*) AS n FROM ev WHERE _p LIKE 'arn:%' GROUP BY ALL
), scored AS (
  SELECT *,
         count(*) OVER (PARTITION BY _p, hour(_hour) ORDER BY _hour
              RANGE BETWEEN INTERVAL 1 DAY * getvariable('baseline_days') PRECEDING
                        AND INTERVAL 1 HOUR PRECEDING) AS same_hour,
         count(*) OVER (PARTITION BY _p ORDER BY _hour
              RANGE BETWEEN INTERVAL 1 DAY * getvariable('baseline_days') PRECEDING
                        AND INTERVAL 1 HOUR PRECEDING) AS active_hours,
         min(_hour) OVER (PARTITION BY _p) AS since
  FROM hourly
), flagged AS (
  SELECT _p, _hour,
         format('{} calls at {}:00 UTC, an hour of day without activity in the last {} days ({} active hours)',
                n, lpad(hour(_hour)::VARCHAR, 2, '0'), getvariable('baseline_days'), active_hours) AS evidence
  FROM scored
  WHERE same_hour = 0 AND n >= getvariable('min_events')
    AND active_hours >= getvariable('min_active_hours')
    AND _hour >= since + INTERVAL 1 DAY * getvariable('min_history_days')
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN flagged USING (_p, _hour)) ids USING (eventID)
