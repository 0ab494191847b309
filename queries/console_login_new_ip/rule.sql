WITH ev AS MATERIALIZED (
  SELECT ts_principal(userIdentity) AS _p, sourceIPAddress AS _ip,
         date_trunc('day', eventTime) AS _day, min(eventTime) AS _first
  FROM cloudtrail WHERE ts_is_caller(userIdentity, eventType) AND sourceIPAddress IS NOT NULL
  GROUP BY ALL
), fresh AS (
  SELECT *, lag(_day) OVER (PARTITION BY _p, _ip ORDER BY _day) AS prev,
         min(_day) OVER (PARTITION BY _p) AS since
  FROM ev
), logins AS (
  SELECT eventID, eventTime, sourceIPAddress, ts_principal(userIdentity) AS _p,
         date_trunc('day', eventTime) AS _day
  FROM cloudtrail
  WHERE eventSource = 'signin.amazonaws.com' AND eventName = 'ConsoleLogin'
    AND json_extract_string(responseElements, '$.ConsoleLogin') = 'Success'
)
SELECT c.*, ids.evidence FROM cloudtrail c JOIN (
SELECT l.eventID,
       format('console sign-in from {}, not used by this principal in {} days{}; history since {}',
              l.sourceIPAddress, getvariable('baseline_days'),
              CASE WHEN f.prev IS NULL THEN '' ELSE format(' (last {})', strftime(f.prev, '%Y-%m-%d')) END,
              strftime(f.since, '%Y-%m-%d')) AS evidence
FROM logins l JOIN fresh f ON f._p = l._p AND f._ip = l.sourceIPAddress AND f._day = l._day
WHERE l.eventTime = f._first
  AND (f.prev IS NULL OR f._day - f.prev > INTERVAL 1 DAY * getvariable('baseline_days'))
  AND f._day >= f.since + INTERVAL 1 DAY * getvariable('min_history_days')
) ids USING (eventID)
