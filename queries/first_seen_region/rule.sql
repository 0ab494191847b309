WITH ev AS MATERIALIZED (
  SELECT *, ts_principal(userIdentity) AS _p, awsRegion AS _v, date_trunc('day', eventTime) AS _day
  FROM cloudtrail
  WHERE ts_is_caller(userIdentity, eventType) AND awsRegion IS NOT NULL
), daily AS (
  SELECT _p, _v, _day FROM ev WHERE _v IS NOT NULL AND _p LIKE 'arn:%' GROUP BY ALL
), principals AS (
  SELECT _p, min(_day) AS since, count(DISTINCT _v) AS n_values FROM daily GROUP BY _p
), fresh AS (
  SELECT d._p, d._v, d._day, lag(d._day) OVER (PARTITION BY d._p, d._v ORDER BY d._day) AS prev,
         p.since, p.n_values
  FROM daily d JOIN principals p USING (_p)
), flagged AS (
  SELECT _p, _v, _day,
         format('first {} {} for this principal{}; history since {} ({} distinct)',
                'region', _v,
                CASE WHEN prev IS NULL THEN '' ELSE format(' in {} days (last {})',
                     getvariable('baseline_days'), strftime(prev, '%Y-%m-%d')) END,
                strftime(since, '%Y-%m-%d'), n_values) AS evidence
  FROM fresh
  WHERE _day >= since + INTERVAL 1 DAY * getvariable('min_history_days')
    AND (prev IS NULL OR _day - prev > INTERVAL 1 DAY * getvariable('baseline_days'))
    AND true
)
SELECT ev.* EXCLUDE (_p, _v, _day), flagged.evidence
FROM ev JOIN flagged USING (_p, _v, _day)
