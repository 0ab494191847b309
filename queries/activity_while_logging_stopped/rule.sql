WITH stops AS (
  SELECT eventID, eventTime, ts_principal(userIdentity) AS who,
         coalesce(nullif(userIdentity.accessKeyId, ''), userIdentity.arn) AS _actor,
         coalesce(recipientAccountId, '') AS _acct,
         json_extract_string(requestParameters, '$.name') AS trail
  FROM cloudtrail
  WHERE eventSource = 'cloudtrail.amazonaws.com' AND eventName = 'StopLogging' AND errorCode IS NULL
), starts AS (
  SELECT eventTime, coalesce(recipientAccountId, '') AS _acct,
         json_extract_string(requestParameters, '$.name') AS trail
  FROM cloudtrail
  WHERE eventSource = 'cloudtrail.amazonaws.com' AND eventName = 'StartLogging' AND errorCode IS NULL
), gaps AS (
  SELECT s.*, least(min(r.eventTime), s.eventTime + INTERVAL 1 MINUTE * getvariable('window_minutes')) AS until
  FROM stops s LEFT JOIN starts r ON r._acct = s._acct AND r.trail = s.trail AND r.eventTime > s.eventTime
  GROUP BY s.eventID, s.eventTime, s.who, s._actor, s._acct, s.trail
), hits AS (
  SELECT c.eventID, g.eventID AS stop_id, g.who, g.eventTime AS stopped, g.until, g.trail
  FROM cloudtrail c
  JOIN gaps g ON coalesce(nullif(c.userIdentity.accessKeyId, ''), c.userIdentity.arn) = g._actor
   AND coalesce(c.recipientAccountId, '') = g._acct
   AND c.eventTime > g.eventTime AND c.eventTime < g.until
  WHERE NOT (c.eventSource = 'cloudtrail.amazonaws.com' AND c.eventName = 'StartLogging')
    AND c.eventTime > (SELECT min(eventTime) FROM gaps)
    AND c.eventTime < (SELECT max(until) FROM gaps)
), ids AS (
  SELECT unnest(list_append(list(eventID), stop_id)) AS eventID, who,
         format('{} stopped {} at {}; {} calls with the same credentials while it was off (until {}: StartLogging or the {}-minute cap)',
                who, trail, strftime(stopped, '%Y-%m-%d %H:%M:%SZ'), count(*),
                strftime(until, '%Y-%m-%d %H:%M:%SZ'), getvariable('window_minutes')) AS evidence
  FROM hits GROUP BY stop_id, who, trail, stopped, until
)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
