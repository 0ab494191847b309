WITH ev AS MATERIALIZED (
  SELECT eventID, eventSource, eventName, ts_principal(userIdentity) AS _p,
         time_bucket(INTERVAL 1 MINUTE * getvariable('window_minutes'), eventTime) AS _w
  FROM cloudtrail
  WHERE (eventName LIKE 'List%' OR eventName LIKE 'Describe%' OR eventName LIKE 'Get%')
    AND eventCategory IS DISTINCT FROM 'Data' AND ts_is_caller(userIdentity, eventType)
), per AS (
  SELECT _p, _w, count(DISTINCT eventSource || ':' || eventName) AS apis,
         count(DISTINCT eventSource) AS services
  FROM ev GROUP BY ALL
), scored AS (
  SELECT *, coalesce(max(apis) OVER (PARTITION BY _p ORDER BY _w
              RANGE BETWEEN INTERVAL 1 DAY * getvariable('baseline_days') PRECEDING
                        AND INTERVAL 1 MINUTE PRECEDING), 0) AS base_max
  FROM per
), flagged AS (
  SELECT _p, _w,
         format('{} distinct discovery APIs over {} services in the {} minutes from {}; most in a window in {} days: {}',
                apis, services, getvariable('window_minutes'), strftime(_w, '%Y-%m-%d %H:%MZ'),
                getvariable('baseline_days'), base_max) AS evidence
  FROM scored
  WHERE apis >= getvariable('floor') AND apis > getvariable('ratio') * base_max
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN flagged USING (_p, _w)) ids USING (eventID)
