WITH ev AS MATERIALIZED (
  SELECT *, ts_principal(userIdentity) AS _p, userIdentity.accessKeyId AS _key,
         time_bucket(INTERVAL 1 MINUTE * getvariable('window_minutes'), eventTime) AS _w
  FROM cloudtrail
  WHERE ts_is_caller(userIdentity, eventType) AND ts_is_ip(sourceIPAddress)
    AND nullif(userIdentity.accessKeyId, '') IS NOT NULL
), per AS (
  SELECT _p, _key, _w, count(DISTINCT ts_ip_prefix(sourceIPAddress)) AS nets,
         count(DISTINCT sourceIPAddress) AS ips
  FROM ev GROUP BY ALL
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
SELECT ev.* EXCLUDE (_p, _key, _w), flagged.evidence FROM ev JOIN flagged USING (_p, _key, _w)
