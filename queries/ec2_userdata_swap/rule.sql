WITH ec2 AS MATERIALIZED (
  SELECT eventID, eventName, eventTime, ts_principal(userIdentity) AS _p,
         CASE WHEN eventName = 'ModifyInstanceAttribute'
              THEN [json_extract_string(requestParameters, '$.instanceId')]
              ELSE json_extract_string(requestParameters, '$.instancesSet.items[*].instanceId')
         END AS _ids
  FROM cloudtrail
  WHERE eventSource = 'ec2.amazonaws.com' AND errorCode IS NULL
    AND (eventName IN ('StopInstances', 'StartInstances')
         OR (eventName = 'ModifyInstanceAttribute'
             AND json_extract(requestParameters, '$.userData') IS NOT NULL))
), steps AS (
  SELECT eventID, eventName, eventTime, _p, unnest(_ids) AS _inst FROM ec2
), seqs AS (
  SELECT s.eventID AS sid, m.eventID AS mid, t.eventID AS tid, s._p AS who,
         format('{} stopped {} at {}, changed its user data {} s later and started it {} s later',
                s._p, s._inst, strftime(s.eventTime, '%Y-%m-%d %H:%M:%SZ'),
                date_diff('second', s.eventTime, m.eventTime),
                date_diff('second', s.eventTime, t.eventTime)) AS evidence
  FROM steps s
  JOIN steps m ON m._inst = s._inst AND m._p = s._p AND m.eventName = 'ModifyInstanceAttribute'
   AND m.eventTime >= s.eventTime
  JOIN steps t ON t._inst = s._inst AND t._p = s._p AND t.eventName = 'StartInstances'
   AND t.eventTime >= m.eventTime
   AND t.eventTime <= s.eventTime + INTERVAL 1 MINUTE * getvariable('window_minutes')
  WHERE s.eventName = 'StopInstances'
), ids AS (SELECT DISTINCT unnest([sid, mid, tid]) AS eventID, who, evidence FROM seqs)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
