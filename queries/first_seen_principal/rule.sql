WITH ev AS MATERIALIZED (
  SELECT eventID, ts_principal(userIdentity) AS _p, date_trunc('day', eventTime) AS _day,
         coalesce(recipientAccountId, userIdentity.accountId, '') AS _acct
  FROM cloudtrail WHERE ts_is_caller(userIdentity, eventType)
), daily AS (
  SELECT _acct, _p, _day FROM ev GROUP BY ALL
), accounts AS (
  SELECT _acct, min(_day) AS since FROM daily GROUP BY _acct
), fresh AS (
  SELECT _acct, _p, _day, lag(_day) OVER (PARTITION BY _acct, _p ORDER BY _day) AS prev, since
  FROM daily JOIN accounts USING (_acct)
  WHERE _p LIKE 'arn:%'
), flagged AS (
  SELECT _acct, _p, _day,
         format('first activity of this principal{}; account history since {}',
                CASE WHEN prev IS NULL THEN '' ELSE format(' in {} days', getvariable('baseline_days')) END,
                strftime(since, '%Y-%m-%d')) AS evidence
  FROM fresh
  WHERE _day >= since + INTERVAL 1 DAY * getvariable('min_history_days')
    AND (prev IS NULL OR _day - prev > INTERVAL 1 DAY * getvariable('baseline_days'))
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN flagged USING (_acct, _p, _day)) ids USING (eventID)
