WITH created AS MATERIALIZED (
  SELECT eventID, eventTime, userIdentity, requestParameters,
         json_extract_string(responseElements, '$.accessKey.accessKeyId') AS _key
  FROM cloudtrail
  WHERE eventSource = 'iam.amazonaws.com' AND eventName = 'CreateAccessKey' AND errorCode IS NULL
), uses AS (
  SELECT eventID, eventTime, sourceIPAddress, userIdentity.accessKeyId AS _key FROM cloudtrail
  WHERE userIdentity.accessKeyId IN (SELECT _key FROM created WHERE _key IS NOT NULL)
), pairs AS (
  SELECT c.eventID AS cid, list(u.eventID) AS uids, ts_principal(c.userIdentity) AS who,
         format('access key {} created for {} by {} at {}; {} calls with it within {} minutes, first after {} s from {}',
                c._key, coalesce(json_extract_string(c.requestParameters, '$.userName'), 'the caller'),
                ts_principal(c.userIdentity), strftime(c.eventTime, '%Y-%m-%d %H:%M:%SZ'),
                count(*), getvariable('window_minutes'),
                min(date_diff('second', c.eventTime, u.eventTime)),
                array_to_string(list(DISTINCT u.sourceIPAddress), ', ')) AS evidence
  FROM created c JOIN uses u ON u._key = c._key AND u.eventTime > c.eventTime
   AND u.eventTime <= c.eventTime + INTERVAL 1 MINUTE * getvariable('window_minutes')
  GROUP BY c.eventID, c._key, c.requestParameters, c.userIdentity, c.eventTime
), ids AS (SELECT unnest(list_append(uids, cid)) AS eventID, who, evidence FROM pairs)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
