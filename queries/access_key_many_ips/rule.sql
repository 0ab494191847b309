WITH ev AS MATERIALIZED (
  SELECT eventID, ts_principal(userIdentity) AS _p, userIdentity.accessKeyId AS _key,
         time_bucket(INTERVAL 1 MINUTE * getvariable('window_minutes'), eventTime) AS _w,
         sourceIPAddress AS _ip
  FROM cloudtrail
  WHERE ts_is_caller(userIdentity, eventType) AND nullif(userIdentity.accessKeyId, '') IS NOT NULL
), per_ip AS (
  SELECT _p, _key, _w, _ip FROM ev GROUP BY ALL
), nets_of AS (
  SELECT _ip, ts_ip_prefix(_ip) AS _net FROM (SELECT DISTINCT _ip FROM per_ip)
), per AS (
  SELECT _p, _key, _w, count(DISTINCT _net) AS nets, count(DISTINCT _ip) AS ips
  FROM per_ip JOIN nets_of USING (_ip) WHERE _net IS NOT NULL GROUP BY ALL
), scored AS (
  SELECT *, coalesce(max(nets) OVER (PARTITION BY _p ORDER BY _w
              RANGE BETWEEN INTERVAL 1 DAY * getvariable('baseline_days') PRECEDING
                        AND INTERVAL 1 MINUTE PRECEDING), 0) AS base_max,
         min(_w) OVER (PARTITION BY _p) AS since
  FROM per
), flagged AS (
  SELECT _p, _key, _w,
         format('key {} used from {} networks ({} addresses) in {} minutes from {}; most in a window in {} days: {}',
                _key, nets, ips, getvariable('window_minutes'), strftime(_w, '%Y-%m-%d %H:%MZ'),
                getvariable('baseline_days'), base_max) AS evidence
  FROM scored
  WHERE nets >= getvariable('min_networks') AND nets > 2 * base_max
    AND _w >= since + INTERVAL 1 DAY * getvariable('min_history_days')
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM ev JOIN nets_of USING (_ip) JOIN flagged USING (_p, _key, _w)
      WHERE _net IS NOT NULL) ids USING (eventID)
