WITH ev AS MATERIALIZED (
  SELECT eventID, eventName, ts_principal(userIdentity) AS _p,
         time_bucket(INTERVAL 1 MINUTE * getvariable('window_minutes'), eventTime) AS _w
  FROM cloudtrail
  WHERE errorCode IN ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'Client.UnauthorizedOperation', 'UnauthorizedAccess', 'Forbidden') AND ts_is_caller(userIdentity, eventType)
), bursts AS (
  SELECT _p, _w, format('{} denied calls ({} distinct APIs) in the {} minutes from {}; floor {}',
                        count(*), count(DISTINCT eventName), getvariable('window_minutes'),
                        strftime(_w, '%Y-%m-%d %H:%MZ'), getvariable('floor')) AS evidence
  FROM ev GROUP BY _p, _w HAVING count(*) >= getvariable('floor')
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN bursts USING (_p, _w)) ids USING (eventID)
