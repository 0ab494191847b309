WITH ev AS MATERIALIZED (
  SELECT eventID, awsRegion, eventSource, eventName, ts_principal(userIdentity) AS _p,
         date_trunc('hour', eventTime) AS _hour,
         coalesce(recipientAccountId, '') AS _acct, true AS _hit
  FROM cloudtrail
  WHERE eventCategory IS DISTINCT FROM 'Data' AND eventCategory IS DISTINCT FROM 'Insight'
    AND ts_is_caller(userIdentity, eventType)
), hourly AS (
  SELECT _acct, awsRegion, eventSource, eventName, _hour, count(*) FILTER (WHERE _hit) AS n
  FROM ev GROUP BY ALL
), scored AS (
  SELECT *, min(_hour) OVER (PARTITION BY _acct, awsRegion, eventSource, eventName) AS since,
         count(*) OVER w AS base_hours,
         coalesce(median(n) OVER w, 0) AS med, coalesce(mad(n) OVER w, 0) * 1.4826 AS sd
  FROM hourly
  WINDOW w AS (PARTITION BY _acct, awsRegion, eventSource, eventName ORDER BY _hour
               RANGE BETWEEN INTERVAL 1 DAY * getvariable('baseline_days') PRECEDING
                         AND INTERVAL 1 HOUR PRECEDING)
), spikes AS (
  SELECT * FROM scored
  WHERE n >= getvariable('floor') AND n >= getvariable('ratio') * med
    AND n > med + getvariable('k') * sd
    AND _hour >= since + INTERVAL 1 DAY * getvariable('min_history_days')
), callers AS (
  SELECT ev._acct, ev.awsRegion, ev.eventSource, ev.eventName, ev._hour, ev._p,
         count(*) AS c, any_value(s.n) AS n, any_value(s.med) AS med, any_value(s.sd) AS sd,
         any_value(s.base_hours) AS base_hours
  FROM ev JOIN spikes s USING (_acct, awsRegion, eventSource, eventName, _hour)
  WHERE ev._hit GROUP BY ALL
), named AS (
  SELECT _acct, awsRegion, eventSource, eventName, _hour, _p,
         format('{} {} {} in {} in the hour from {} vs a {}-day baseline of median {} per active hour (MAD-sd {}, {} hours); {} of them by this principal ({}%)',
                n, eventName, 'calls', awsRegion, strftime(_hour, '%Y-%m-%d %H:00Z'),
                getvariable('baseline_days'), med, round(sd, 1), base_hours, c,
                round(100.0 * c / n)) AS evidence
  FROM callers WHERE c >= getvariable('min_share') * n
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN named USING (_acct, awsRegion, eventSource, eventName, _hour, _p)
      WHERE ev._hit) ids USING (eventID)
