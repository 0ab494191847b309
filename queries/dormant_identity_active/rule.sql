WITH ev AS MATERIALIZED (
  SELECT eventID, ts_principal(userIdentity) AS _p, date_trunc('day', eventTime) AS _day
  FROM cloudtrail WHERE ts_is_caller(userIdentity, eventType)
), daily AS (
  SELECT _p, _day, lag(_day) OVER (PARTITION BY _p ORDER BY _day) AS prev
  FROM (SELECT DISTINCT _p, _day FROM ev WHERE _p LIKE 'arn:%')
), flagged AS (
  SELECT _p, _day, format('first activity after {} idle days (last active {})',
                          date_diff('day', prev, _day) - 1, strftime(prev, '%Y-%m-%d')) AS evidence
  FROM daily WHERE _day - prev > INTERVAL 1 DAY * getvariable('dormant_days')
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN flagged USING (_p, _day)) ids USING (eventID)
